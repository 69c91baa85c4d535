//! TLS through the real binary with real clients: `curl --cacert` to HEC and the API,
//! rsyslog (`omfwd`, x509/name) and syslog-ng (`tls()`) forwarding syslog over TLS,
//! `openssl s_client` refused without or with a wrong client certificate, and a certificate
//! replaced on disk served to new connections without a restart.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use securewatch_tests::instance::{curl, free_port, logger, Instance};
use securewatch_tests::tls::{path, rsyslog, s_client, syslog_ng, Issued, Pki};
use serde_json::Value;

const TOKEN: &str = "e2e-tls-token-1234";

/// The stored syslog event whose message is `message`, waiting for it.
fn wait_message(instance: &Instance, message: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = instance.events("source=syslog&limit=200").unwrap();
        if let Some(event) = events.into_iter().find(|event| event["message"].as_str().is_some_and(|text| text.contains(message))) {
            return event;
        }
        assert!(Instant::now() < deadline, "no event with {message:?}; stderr:\n{}", instance.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a tool is installed (tests/run.sh installs them); a missing one fails the test when
/// `SECUREWATCH_REQUIRE_TLS_CLIENTS=1`, else skips that part with a note.
fn have(tool: &str) -> bool {
    let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        assert!(std::env::var("SECUREWATCH_REQUIRE_TLS_CLIENTS").as_deref() != Ok("1"), "{tool} is missing (tests/run.sh installs it)");
        eprintln!("skipped part: {tool} is not installed (tests/run.sh installs it)");
    }
    found
}

struct Setup {
    pki: Pki,
    server: Issued,
    relay: Issued,
}

fn setup(dir: &Path) -> Setup {
    let pki = Pki::new(&dir.join("pki"), "main").unwrap();
    Pki::new(&dir.join("pki"), "stranger").unwrap();
    let server = pki.issue("main", "server", "/CN=securewatch.test/O=SecureWatch tests", &["DNS:localhost", "IP:127.0.0.1"]).unwrap();
    let relay = pki.issue("main", "relay", "/CN=relay.example.com/O=Relays", &["DNS:relay.example.com"]).unwrap();
    Setup { pki, server, relay }
}

#[test]
fn hec_over_https_and_syslog_over_tls_with_real_clients() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { pki, server, relay } = setup(dir.path());
    let ca = pki.ca("main");
    let tls_port = free_port();
    let extra = format!(
        "tls_listen = \"127.0.0.1:{tls_port}\"\n\n[sources.syslog.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         client_ca_file = \"{ca}\"\nclient_auth = \"name\"\npermitted_peers = [\"*.example.com\"]\nreload_interval_ms = 0\n\n\
         [sources.hec.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n",
        cert = path(&server.cert),
        key = path(&server.key),
        ca = path(&ca),
    );
    let instance = Instance::start(dir.path(), &extra, &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();

    // HEC over HTTPS with curl trusting the test CA; plain HTTP and an untrusted CA fail.
    let url = format!("https://localhost:{}/services/collector/event", instance.ports.hec);
    let auth = format!("Authorization: Splunk {TOKEN}");
    let body = r#"{"event": "over https", "sourcetype": "tls:test"}"#;
    let (status, answer) = curl(&["--cacert", path(&ca), "-H", &auth, "--data-binary", body, &url]).unwrap();
    assert_eq!((status, answer.as_str()), (200, r#"{"text":"Success","code":0}"#));
    assert!(curl(&["-H", &auth, "--data-binary", body, &url]).is_err(), "the system roots do not trust the test CA");
    assert!(curl(&["-H", &auth, "--data-binary", body, &instance.hec_url("/services/collector/event")]).unwrap_or((0, String::new())).0 != 200);
    let events = instance.wait_events("source=hec&limit=10", 1).unwrap();
    assert_eq!(events[0]["message"], "over https");

    // openssl s_client: with the relay certificate the message is stored with the client's
    // subject; without a certificate, or with one of another CA, or with a name not
    // permitted, the connection is refused and counted.
    let message = "<13>1 2026-12-06T10:00:00Z relay app - - - from s_client";
    let framed = format!("{} {message}", message.len());
    let admitted = s_client(tls_port, &ca, Some(&relay), framed.as_bytes(), &[]).unwrap();
    assert_eq!(admitted.server_subject.as_deref(), Some("CN = securewatch.test, O = SecureWatch tests"), "{admitted:?}");
    let event = wait_message(&instance, "from s_client");
    assert_eq!(event["fields"]["source.peer_identity"], "CN=relay.example.com, O=Relays");
    s_client(tls_port, &ca, None, b"5 <13>x", &[]).unwrap();
    let stranger = pki.issue("stranger", "stranger", "/CN=intruder.example.com", &["DNS:intruder.example.com"]).unwrap();
    s_client(tls_port, &ca, Some(&stranger), b"5 <13>x", &[]).unwrap();
    let unlisted = pki.issue("main", "unlisted", "/CN=web.example.org", &["DNS:web.example.org"]).unwrap();
    s_client(tls_port, &ca, Some(&unlisted), b"5 <13>x", &[]).unwrap();
    let old_protocol = s_client(tls_port, &ca, Some(&relay), b"5 <13>x", &["-tls1_1"]).unwrap();
    assert!(old_protocol.server_subject.is_none(), "TLS 1.1 is refused: {old_protocol:?}");
    let failures = |reason: &str| instance.metric("securewatch_tls_handshake_failures_total", &["listener=\"syslog\"", &format!("reason=\"{reason}\"")]);
    assert_eq!(failures("no_client_certificate"), 1.0);
    assert_eq!(failures("bad_client_certificate"), 1.0);
    assert!(failures("incompatible_client") + failures("protocol_violation") + failures("other") >= 1.0);
    assert_eq!(instance.metric("securewatch_tls_peers_refused_total", &["reason=\"name_not_permitted\""]), 1.0);
    let stored = instance.events("source=syslog&limit=200").unwrap();
    assert!(stored.iter().all(|event| event["message"] != "x"), "no refused client got a message in");

    // rsyslog forwarding over TLS with x509/name and its client certificate.
    if have("rsyslogd") {
        let input = free_port();
        let relay_process = rsyslog(dir.path(), input, tls_port, &ca, &relay).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            logger(&["--server", "127.0.0.1", "--port", &input.to_string(), "--udp", "-t", "relayed", "via rsyslog over TLS"]).unwrap();
            let found = instance.events("source=syslog&limit=200").unwrap().into_iter().find(|e| e["message"] == "via rsyslog over TLS");
            if let Some(event) = found {
                assert_eq!(event["fields"]["source.peer_identity"], "CN=relay.example.com, O=Relays");
                assert_eq!(event["fields"]["appname"], "relayed");
                break;
            }
            assert!(Instant::now() < deadline, "rsyslog forwarded nothing; its log:\n{}", relay_process.output());
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    // syslog-ng's syslog() destination over tls().
    let syslog_ng_input = free_port();
    match syslog_ng(dir.path(), syslog_ng_input, tls_port, &ca, &relay).unwrap() {
        Some(relay_process) => {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                logger(&["--server", "127.0.0.1", "--port", &syslog_ng_input.to_string(), "--udp", "--rfc3164", "-t", "ng", "via syslog-ng over TLS"]).unwrap();
                let found = instance.events("source=syslog&limit=200").unwrap().into_iter().find(|e| e["message"] == "via syslog-ng over TLS");
                if let Some(event) = found {
                    assert_eq!(event["fields"]["source.peer_identity"], "CN=relay.example.com, O=Relays");
                    break;
                }
                assert!(Instant::now() < deadline, "syslog-ng forwarded nothing; its log:\n{}", relay_process.output());
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        None => {
            assert!(std::env::var("SECUREWATCH_REQUIRE_TLS_CLIENTS").as_deref() != Ok("1"), "SECUREWATCH_TEST_SYSLOG_NG is not set");
            eprintln!("skipped part: syslog-ng (tests/run.sh unpacks it and sets SECUREWATCH_TEST_SYSLOG_NG)");
        }
    }

    // A certificate replaced on disk: SIGHUP, and new connections get it without a restart;
    // then a broken file keeps the new one, counted.
    let renewed = pki.issue("main", "renewed", "/CN=renewed.securewatch.test", &["DNS:localhost"]).unwrap();
    std::fs::copy(&renewed.cert, &server.cert).unwrap();
    std::fs::copy(&renewed.key, &server.key).unwrap();
    let pid = instance.child.id().to_string();
    let reloaded = |subject: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = s_client(tls_port, &ca, Some(&relay), b"", &[]).unwrap().server_subject;
            if seen.as_deref() == Some(subject) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    assert!(reloaded("CN = renewed.securewatch.test"), "the renewed certificate is not served");
    std::fs::write(&server.cert, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n").unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while instance.metric("securewatch_tls_reloads_total", &["listener=\"syslog\"", "result=\"failed\""]) < 1.0 {
        assert!(Instant::now() < deadline, "the broken certificate was not counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reloaded("CN = renewed.securewatch.test"), "a broken file keeps the previous certificate");
    assert!(instance.stderr().contains("TLS reload failed"), "{}", instance.stderr());
    assert!(!instance.stderr().contains("PRIVATE KEY"));
}

#[test]
fn the_api_over_https_with_client_certificates_and_a_reload_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let Setup { pki, server, relay: operator } = setup(dir.path());
    let ca = pki.ca("main");
    let api_port = free_port();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let config = format!(
        "[api]\nlisten = \"127.0.0.1:{api_port}\"\n\n[api.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         client_ca_file = \"{ca}\"\nreload_interval_ms = 200\n\n[sources.hec]\nenabled = false\n\n[sources.syslog]\nenabled = false\n",
        cert = path(&server.cert),
        key = path(&server.key),
        ca = path(&ca),
    );
    let config_path = dir.path().join("securewatch.toml");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new(securewatch_tests::instance::binary())
        .args(["run", "--config", path(&config_path), "--data-dir", path(&data_dir)])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let url = format!("https://localhost:{api_port}/api/v1/health/ready");
    let with_cert = ["--cacert", path(&ca), "--cert", path(&operator.cert), "--key", path(&operator.key)];
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let mut args = with_cert.to_vec();
        args.push(&url);
        if let Ok((200, _)) = curl(&args) {
            break true;
        }
        if Instant::now() > deadline || child.0.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    assert!(ready, "the API never answered over HTTPS; stderr:\n{}", stderr());
    assert!(curl(&["--cacert", path(&ca), &url]).is_err(), "no client certificate: refused");
    assert!(curl(&[&format!("http://127.0.0.1:{api_port}/api/v1/health/ready")]).map_or(true, |(status, _)| status != 200));
    // Replaced on disk, picked up by the interval check (no signal, no restart).
    let renewed = pki.issue("main", "renewed", "/CN=renewed-api.securewatch.test", &["DNS:localhost"]).unwrap();
    std::fs::copy(&renewed.cert, &server.cert).unwrap();
    std::fs::copy(&renewed.key, &server.key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = s_client(api_port, &ca, Some(&operator), b"", &[]).unwrap();
        if seen.server_subject.as_deref() == Some("CN = renewed-api.securewatch.test") {
            break;
        }
        assert!(Instant::now() < deadline, "the API still serves {seen:?}; stderr:\n{}", stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut args = with_cert.to_vec();
    args.push(&url);
    assert_eq!(curl(&args).unwrap().0, 200);
    drop(child);
}

/// A child process killed when the test ends, also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
