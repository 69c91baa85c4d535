//! Issue 24: idle connections by the hundred on every listener; legitimate clients still get in.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use securewatch_tests::instance::{curl, logger, Instance};

const TOKEN: &str = "e2e-abuse-token";

/// Idle connections opened on each listener: four times its `max_connections`.
const IDLE_PER_LISTENER: usize = 200;

/// Every listener serves 50 connections (syslog closes one silent for 1 s, its default, to make
/// room).
const LIMITS: [(&str, &str); 4] = [
    ("SECUREWATCH_HEC_TOKEN", TOKEN),
    ("SECUREWATCH_API__MAX_CONNECTIONS", "50"),
    ("SECUREWATCH_SOURCES__HEC__MAX_CONNECTIONS", "50"),
    ("SECUREWATCH_SOURCES__SYSLOG__MAX_CONNECTIONS", "50"),
];

fn open_idle(port: u16, count: usize) -> Vec<TcpStream> {
    (0..count).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect()
}

#[test]
fn idle_connections_by_the_hundred_do_not_lock_out_hec_the_api_or_syslog() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &LIMITS).unwrap();
    let ports = instance.ports;
    let _idle: Vec<TcpStream> = [ports.api, ports.hec, ports.syslog]
        .into_iter()
        .flat_map(|port| open_idle(port, IDLE_PER_LISTENER))
        .collect();
    // Every idle connection accepted (each past syslog's 50 refused, or closing one idle 1 s),
    // then long enough for syslog's to count as idle, far below the HTTP header timeout.
    let syslog = |name: &str| instance.metric(name, &["source=\"syslog\""]);
    let past_the_limit =
        || syslog("securewatch_source_connections_refused_total") + syslog("securewatch_source_idle_connections_closed_total");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while past_the_limit() < (IDLE_PER_LISTENER - 50) as f64 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));

    let (status, body) = curl(&[&instance.api_url("/api/v1/health")]).unwrap();
    assert_eq!(status, 200, "{body}");
    let auth = format!("Authorization: Splunk {TOKEN}");
    let url = instance.hec_url("/services/collector/event");
    let (status, body) = curl(&["-X", "POST", &url, "-H", &auth, "--data-binary", r#"{"event":"hec got in"}"#]).unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"text":"Success","code":0}"#));
    let port = ports.syslog.to_string();
    logger(&["--server", "127.0.0.1", "--port", &port, "--tcp", "-t", "abuse", "syslog got in"]).unwrap();

    let events = instance.wait_events("q=got%20in&limit=10", 2).unwrap();
    let mut messages: Vec<&str> = events.iter().filter_map(|event| event["message"].as_str()).collect();
    messages.sort();
    assert_eq!(messages, ["hec got in", "syslog got in"], "{events:#?}");

    // Each HTTP listener kept 50 open: every connection past them closed the idlest one.
    let evicted = |listener: &str| {
        let listener = format!("listener=\"{listener}\"");
        instance.metric("securewatch_http_connections_closed_total", &[&listener, "reason=\"idle_evicted\""])
    };
    assert!(evicted("hec") >= (IDLE_PER_LISTENER - 50) as f64, "hec evicted {}", evicted("hec"));
    assert!(evicted("api") >= (IDLE_PER_LISTENER - 50) as f64, "api evicted {}", evicted("api"));
    for listener in ["hec", "api"] {
        let open = instance.metric("securewatch_http_connections_open", &[&format!("listener=\"{listener}\"")]);
        assert!(open <= 51.0, "{listener} has {open} connections open");
    }
    let syslog_closed = instance.metric("securewatch_source_idle_connections_closed_total", &["source=\"syslog\""]);
    assert!(syslog_closed >= 1.0, "idle connections made room: {syslog_closed}");
}

/// Half-sent requests on HEC and the API at SIGTERM: closed at once, the process exits (HEC
/// used to wait for the client until the 30 s source drain gave up).
#[test]
fn half_sent_requests_on_hec_and_the_api_do_not_hold_the_process_after_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();
    let mut clients = Vec::new();
    for (port, request) in [
        (instance.ports.api, &b"GET /api/v1/health HTTP/1.1\r\nHo"[..]),
        (instance.ports.hec, &b"POST /services/collector/event HTTP/1.1\r\nAuthoriz"[..]),
    ] {
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.write_all(request).unwrap();
        clients.push(client);
    }
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let status = instance.terminate().expect("exits while the clients still hold their connections");
    assert!(status.success(), "exit status {status}");
    // Far below the 25 s HEC grace: nothing was in flight, so nothing was waited for.
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    drop(clients);
}

/// Under an open-files limit of 400 (`prlimit`), the listeners' default connection limits
/// (256 + 1024 + 1024) cannot all be served: they are lowered to fit, logged, and served.
#[test]
fn connection_limits_are_lowered_to_fit_the_open_files_limit() {
    use securewatch_tests::instance::{binary, config_text, Ports};
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let config = dir.path().join("securewatch.toml");
    std::fs::write(&config, config_text(ports, "")).unwrap();
    let stderr_path = dir.path().join("stderr.log");
    let mut child = std::process::Command::new("prlimit")
        .arg("--nofile=400:400")
        .arg(binary())
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .env("SECUREWATCH_HEC_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{}/api/v1/health", ports.api);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !matches!(curl(&[&health]), Ok((200, _))) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    // 400 descriptors, half kept for the rest: 200 shared in proportion.
    assert!(log.contains("api=22 sources.hec=88 sources.syslog=88"), "{log}");
    assert!(log.contains("max_connections lowered to fit the open-files limit"), "{log}");
    assert!(log.contains("Listening."), "the lowered listeners serve: {log}");
}
