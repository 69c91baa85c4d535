//! The acceptor over loopback with a rustls client and throw-away certificates: client checks, failures counted, reload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// A throw-away CA that signs server and client certificates.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, both PEM.
struct Issued {
    cert: String,
    key: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Authority { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn issue(&self, names: &[&str], common_name: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// Counters by name and `reason`/`result` label.
struct Counters {
    snapshotter: Snapshotter,
    seen: HashMap<(String, String), u64>,
}

impl Counters {
    fn get(&mut self, name: &str, label: &str) -> u64 {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let tag = key.key().labels().find(|l| l.key() == "reason" || l.key() == "result").map(|l| l.value().to_string());
            if let (Some(tag), DebugValue::Counter(delta)) = (tag, value) {
                *self.seen.entry((key.key().name().to_string(), tag)).or_default() += delta;
            }
        }
        self.seen.get(&(name.to_string(), label.to_string())).copied().unwrap_or(0)
    }
}

fn with_counters<F: std::future::Future<Output = ()>>(test: impl FnOnce(Counters) -> F) {
    let recorder = DebuggingRecorder::new();
    let counters = Counters { snapshotter: recorder.snapshotter(), seen: HashMap::new() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(counters)));
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn tls_config(dir: &Path, server: &Issued, client_ca: Option<&Authority>) -> TlsConfig {
    TlsConfig {
        cert_file: write(dir, "server.pem", &server.cert),
        key_file: write(dir, "server.key", &server.key),
        client_ca_file: client_ca.map(|ca| write(dir, "clients-ca.pem", &ca.issuer.pem())),
        client_auth: None,
        permitted_peers: Vec::new(),
        fingerprints: Vec::new(),
        reload_interval_ms: 0,
    }
}

/// Serves `acceptor` on a loopback port: each accepted client gets its identity back as one line.
async fn serve(acceptor: TlsAcceptor) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok((mut stream, identity)) = acceptor.handshake(stream).await {
                    let line = format!("{}\n", identity.unwrap_or_else(|| "-".into()));
                    let _ = stream.write_all(line.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    address
}

/// Connects trusting `ca`, optionally with a client certificate; the line the server sent,
/// and the server certificate it was sent under.
async fn connect(address: std::net::SocketAddr, ca: &Authority, client: Option<&Issued>) -> std::io::Result<(String, CertificateDer<'static>)> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(issued) => {
            let chain = vec![CertificateDer::from_pem_slice(issued.cert.as_bytes()).unwrap()];
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(issued.key.as_bytes()).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(address).await?;
    let mut stream = connector.connect(ServerName::try_from("localhost").unwrap(), stream).await?;
    let mut line = String::new();
    stream.read_to_string(&mut line).await?;
    let served = stream.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned();
    Ok((line.trim().to_string(), served))
}

#[test]
fn certvalid_admits_signed_clients_and_counts_the_others_by_reason() {
    with_counters(|mut counters| async move {
        let dir = tempfile::tempdir().unwrap();
        let (servers, clients, strangers) = (Authority::new("servers"), Authority::new("clients"), Authority::new("strangers"));
        let config = tls_config(dir.path(), &servers.issue(&["localhost"], "server"), Some(&clients));
        let address = serve(TlsAcceptor::new("test", &config, &[]).unwrap()).await;
        let admitted = clients.issue(&["relay.example.com"], "relay");
        let (identity, _) = connect(address, &servers, Some(&admitted)).await.unwrap();
        assert_eq!(identity, "CN=relay");
        // TLS 1.3: the client learns of the refusal on its first read.
        assert!(connect(address, &servers, None).await.is_err());
        assert!(connect(address, &servers, Some(&strangers.issue(&["x.example.com"], "x"))).await.is_err());
        tokio::task::yield_now().await;
        assert_eq!(counters.get(HANDSHAKE_FAILURES, "no_client_certificate"), 1);
        assert_eq!(counters.get(HANDSHAKE_FAILURES, "bad_client_certificate"), 1);
    });
}

#[test]
fn name_and_fingerprint_modes_refuse_unlisted_clients_after_the_handshake() {
    with_counters(|mut counters| async move {
        let dir = tempfile::tempdir().unwrap();
        let (servers, clients) = (Authority::new("servers"), Authority::new("clients"));
        let mut config = tls_config(dir.path(), &servers.issue(&["localhost"], "server"), Some(&clients));
        config.client_auth = Some(ClientAuth::Name);
        config.permitted_peers = vec!["*.relays.example.com".into()];
        config.validate().unwrap();
        let address = serve(TlsAcceptor::new("test", &config, &[]).unwrap()).await;
        let permitted = clients.issue(&["eu.relays.example.com"], "eu");
        assert_eq!(connect(address, &servers, Some(&permitted)).await.unwrap().0, "CN=eu");
        let line = connect(address, &servers, Some(&clients.issue(&["web.example.com"], "web"))).await.map(|(line, _)| line).unwrap_or_default();
        assert_eq!(line, "", "a refused client gets nothing");
        // Fingerprint: a self-signed client certificate, listed by its SHA-256.
        let own = Authority::new("own");
        let listed = own.issue(&["laptop"], "laptop");
        let der = CertificateDer::from_pem_slice(listed.cert.as_bytes()).unwrap();
        config.client_auth = Some(ClientAuth::Fingerprint);
        config.fingerprints = vec![fingerprint_text(der.as_ref())];
        config.validate().unwrap();
        let address = serve(TlsAcceptor::new("test", &config, &[]).unwrap()).await;
        assert_eq!(connect(address, &servers, Some(&listed)).await.unwrap().0, "CN=laptop");
        let line = connect(address, &servers, Some(&own.issue(&["laptop"], "laptop"))).await.map(|(line, _)| line).unwrap_or_default();
        assert_eq!(line, "");
        tokio::task::yield_now().await;
        assert_eq!(counters.get(PEERS_REFUSED, "name_not_permitted"), 1);
        assert_eq!(counters.get(PEERS_REFUSED, "fingerprint_not_permitted"), 1);
    });
}

#[test]
fn a_replaced_certificate_serves_new_connections_and_a_broken_one_keeps_the_old() {
    with_counters(|mut counters| async move {
        let dir = tempfile::tempdir().unwrap();
        let servers = Authority::new("servers");
        let first = servers.issue(&["localhost"], "first");
        let config = tls_config(dir.path(), &first, None);
        let acceptor = TlsAcceptor::new("test", &config, &[]).unwrap();
        let address = serve(acceptor.clone()).await;
        let common_name = |der: &CertificateDer<'_>| {
            let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
            parsed.subject().to_string()
        };
        assert_eq!(common_name(&connect(address, &servers, None).await.unwrap().1), "CN=first");
        assert_eq!(acceptor.reload(), Reload::Unchanged);
        let second = servers.issue(&["localhost"], "second");
        write(dir.path(), "server.pem", &second.cert);
        write(dir.path(), "server.key", &second.key);
        assert_eq!(acceptor.reload(), Reload::Loaded);
        assert_eq!(common_name(&connect(address, &servers, None).await.unwrap().1), "CN=second");
        // A certificate whose key is not the one on disk, then garbage: both refused, logged once each.
        write(dir.path(), "server.pem", &servers.issue(&["localhost"], "third").cert);
        assert_eq!(acceptor.reload(), Reload::Failed);
        assert_eq!(acceptor.reload(), Reload::Unchanged, "the same broken set is not retried");
        write(dir.path(), "server.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
        assert_eq!(acceptor.reload(), Reload::Failed);
        assert_eq!(common_name(&connect(address, &servers, None).await.unwrap().1), "CN=second");
        assert_eq!((counters.get(RELOADS, "loaded"), counters.get(RELOADS, "failed")), (1, 2));
    });
}

#[test]
fn missing_and_mismatched_files_fail_at_start_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Authority::new("servers");
    let mut config = tls_config(dir.path(), &servers.issue(&["localhost"], "s"), None);
    config.key_file = dir.path().join("absent.key");
    let error = TlsAcceptor::new("test", &config, &[]).unwrap_err().to_string();
    assert!(error.contains("absent.key"), "{error}");
    config.key_file = write(dir.path(), "other.key", &servers.issue(&["localhost"], "s").key);
    let error = TlsAcceptor::new("test", &config, &[]).unwrap_err().to_string();
    assert!(error.contains("cert_file and key_file"), "{error}");
    config.key_file = write(dir.path(), "empty.key", "");
    let error = TlsAcceptor::new("test", &config, &[]).unwrap_err().to_string();
    assert!(error.contains("no PEM private key"), "{error}");
    assert!(!error.contains("PRIVATE KEY"));
}

/// A syslog sender writes, closes and never reads. Were a TLS 1.3 session ticket sent to it, the
/// unread ticket would turn its close into a reset, and the reset would discard what the server
/// had not read yet. Without ALPN (syslog) the acceptor sends none, so every byte arrives.
#[tokio::test]
async fn a_sender_that_never_reads_loses_nothing_when_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Authority::new("servers");
    let acceptor = TlsAcceptor::new("test", &tls_config(dir.path(), &servers.issue(&["localhost"], "server"), None), &[]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (mut stream, _) = acceptor.handshake(stream).await.unwrap();
        // Read slowly at first, so the sender is done and closed long before the server is.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut received = Vec::new();
        let read = stream.read_to_end(&mut received).await;
        (read.map(|_| ()).map_err(|error| error.to_string()), received.len())
    });
    let mut roots = RootCertStore::empty();
    roots.add(servers.issuer.der().clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(address).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let message = vec![b'x'; 64 * 1024];
    for _ in 0..32 {
        stream.write_all(&message).await.unwrap();
    }
    stream.shutdown().await.unwrap();
    drop(stream);
    let (read, received) = server.await.unwrap();
    assert_eq!(read, Ok(()), "the server reads to a clean end");
    assert_eq!(received, 32 * 64 * 1024);
}
