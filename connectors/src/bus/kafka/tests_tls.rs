//! The Kafka bus over TLS (`security_protocol = "ssl"`) against a real tansu behind this crate's TLS acceptor, and the SASL settings handed to librdkafka.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};

use super::tests::{poll_until, records_of};
use super::*;
use crate::bus::layout::tests::{numbered_records, test_service};
use crate::tls::{TlsAcceptor, TlsConfig};

/// A tansu broker killed on drop.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CA (PEM) and a certificate for `localhost` it signed (PEM chain, PEM key).
fn certificates() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL takes a certificate whose subject is its issuer's for self-signed.
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "securewatch Kafka test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf_params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let leaf = leaf_params.signed_by(&key, &ca).unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// Terminates TLS on `listener` with `acceptor` and relays each connection to `upstream`.
async fn tls_front(listener: TcpListener, acceptor: TlsAcceptor, upstream: u16) {
    while let Ok((stream, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // A refused handshake is counted by the acceptor; the client sees its alert.
            let Ok((mut tls, _)) = acceptor.handshake(stream).await else { return };
            let Ok(mut plain) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}

#[tokio::test]
async fn records_round_trip_over_tls_and_an_unknown_ca_is_refused() {
    let Some(tansu) = test_service("SECUREWATCH_TEST_TANSU", "SECUREWATCH_REQUIRE_KAFKA", "tansu") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ca, chain, key) = certificates();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (ca_file, cert_file, key_file) = (write("ca.pem", &ca), write("broker.pem", &chain), write("broker.key", &key));
    // tansu 0.6 cannot serve TLS itself (its --cert and --key conflict): it listens in plain
    // text and advertises the TLS front, which clients then reach for every request.
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (front_port, plain_port) = (front.local_addr().unwrap().port(), free_port());
    let _broker = Broker(
        Command::new(tansu)
            .args(["broker", "--silent", "--listener-url", &format!("tcp://127.0.0.1:{plain_port}")])
            .args(["--advertised-listener-url", &format!("tcp://localhost:{front_port}"), "--storage-engine", "memory://tansu/"])
            .env("CLUSTER_ID", "securewatch-tls-test")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let tls = TlsConfig {
        cert_file,
        key_file,
        client_ca_file: None,
        client_auth: None,
        permitted_peers: Vec::new(),
        fingerprints: Vec::new(),
        reload_interval_ms: 0,
    };
    tokio::spawn(tls_front(front, TlsAcceptor::new("kafka-front", &tls, &[]).unwrap(), plain_port));
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", plain_port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config = KafkaBusConfig {
        brokers: format!("localhost:{front_port}"),
        topic: "securewatch-tls".into(),
        security_protocol: SecurityProtocol::Ssl,
        ca_file: Some(ca_file),
        linger_ms: 5,
        message_timeout_ms: 15_000,
        create_partitions: 1,
        ..KafkaBusConfig::default()
    };
    config.validate().unwrap();
    ensure_topic(&config).await.unwrap();
    let producer = KafkaProducer::new(&config).unwrap();
    let sent = numbered_records(0, 200);
    producer.send_batch(&sent).await.unwrap();
    let mut consumer = KafkaConsumer::assign(&config, &[(0, StartOffset::Earliest)]).unwrap();
    let entries = poll_until(&mut consumer, 200, Duration::from_secs(30)).await;
    assert!(records_of(&entries) == sent, "records differ after the round trip over TLS");

    // Trusting another CA, nothing is delivered: the batch fails once its timeout passes.
    let (other_ca, _, _) = certificates();
    let other = write("other-ca.pem", &other_ca);
    let untrusted = KafkaBusConfig { ca_file: Some(other), message_timeout_ms: 3_000, ..config.clone() };
    let producer = KafkaProducer::new(&untrusted).unwrap();
    assert!(producer.send_batch(&sent[..1]).await.is_err(), "a broker certificate of another CA is refused");
}

#[test]
fn sasl_settings_reach_librdkafka_with_the_password_from_a_file_only() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("kafka-password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let text = format!(
        "brokers = \"kafka:9093\"\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n\
         sasl_username = \"securewatch\"\nsasl_password_file = \"{}\"\nca_file = \"/etc/ssl/kafka-ca.pem\"\n",
        password.display()
    );
    let config: KafkaBusConfig = toml::from_str(&text).unwrap();
    config.validate().unwrap();
    let client = config.producer_config().unwrap();
    assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    assert_eq!((client.get("sasl.username"), client.get("sasl.password")), (Some("securewatch"), Some("s3cret")));
    assert_eq!(client.get("ssl.ca.location"), Some("/etc/ssl/kafka-ca.pem"));
    assert!(!format!("{config:?}").contains("s3cret"));
    let refuse = |change: fn(&mut KafkaBusConfig)| {
        let mut refused = config.clone();
        change(&mut refused);
        refused.validate().unwrap_err().to_string()
    };
    assert!(refuse(|c| c.sasl_password_file = None).contains("sasl_password_env or sasl_password_file"));
    assert!(refuse(|c| c.sasl_mechanism = None).contains("need sasl_mechanism"));
    assert!(refuse(|c| {
        c.security_protocol = SecurityProtocol::Ssl;
    })
    .contains("other protocols take neither"));
    assert!(refuse(|c| {
        c.properties.insert("sasl.password".into(), "x".into());
    })
    .contains("sasl_password_env"));
    let plain = KafkaBusConfig { ca_file: Some("ca.pem".into()), ..KafkaBusConfig::default() };
    assert!(plain.validate().unwrap_err().to_string().contains("need security_protocol"));
}
