//! Tenants through the real binary: two tenants ingest over HEC (their own tokens) and syslog
//! (their own listeners, `logger` over TCP and UDP), and every stored event carries its
//! source's tenant, read back through the API.
//!
//! Then the same through access control: a caller of one tenant, on every read route, sees
//! only that tenant's events, alerts, dashboard counts, dead letters and audit entries.

use std::collections::BTreeMap;

use securewatch_tests::instance::{binary, curl, free_port, logger, Instance};
use serde_json::Value;

/// A tenant's HEC token and syslog port.
struct TenantSources {
    name: &'static str,
    token: &'static str,
    syslog_port: u16,
}

/// A running instance with sources for `acme` and `globex`, plus the main syslog listener of
/// the `default` tenant.
struct TwoTenants {
    _dir: tempfile::TempDir,
    instance: Instance,
    tenants: [TenantSources; 2],
}

impl TwoTenants {
    fn start() -> TwoTenants {
        TwoTenants::start_with("")
    }

    /// Like [`TwoTenants::start`], with `config` appended to the instance's configuration.
    fn start_with(config: &str) -> TwoTenants {
        let tenants = [
            TenantSources { name: "acme", token: "acme-hec-token-0123456789abcdef", syslog_port: free_port() },
            TenantSources { name: "globex", token: "globex-hec-token-0123456789abcd", syslog_port: free_port() },
        ];
        let mut extra = config.to_string();
        for tenant in &tenants {
            extra.push_str(&format!(
                "[[sources.hec.tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\ntenant = \"{name}\"\n\n\
                 [[sources.syslog.listeners]]\nudp_listen = \"127.0.0.1:{port}\"\ntcp_listen = \"127.0.0.1:{port}\"\n\
                 tenant = \"{name}\"\n\n",
                name = tenant.name,
                token = tenant.token,
                port = tenant.syslog_port,
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let instance = Instance::start(dir.path(), &extra, &[]).unwrap();
        TwoTenants { _dir: dir, instance, tenants }
    }

    /// Sends, per tenant, one HEC event (its token), one syslog message over TCP and one over
    /// UDP (its listener); and one syslog message to the main listener (`default`).
    fn ingest(&self) {
        for tenant in &self.tenants {
            let auth = format!("Authorization: Splunk {}", tenant.token);
            let body = format!(r#"{{"host": "{0}-web", "event": {{"message": "hec {0}", "User": "alice"}}}}"#, tenant.name);
            let url = self.instance.hec_url("/services/collector/event");
            let (status, answer) = curl(&["-X", "POST", &url, "-H", &auth, "--data-binary", &body]).unwrap();
            assert_eq!(status, 200, "{answer}");
            let port = tenant.syslog_port.to_string();
            for transport in ["--tcp", "--udp"] {
                let message = format!("syslog {} {}", tenant.name, &transport[2..]);
                logger(&["--server", "127.0.0.1", "--port", &port, transport, "-t", "sshd", &message]).unwrap();
            }
        }
        let port = self.instance.ports.syslog.to_string();
        logger(&["--server", "127.0.0.1", "--port", &port, "--tcp", "-t", "sshd", "syslog default tcp"]).unwrap();
    }

    /// Message → tenant of everything [`TwoTenants::ingest`] sends.
    fn expected(&self) -> BTreeMap<String, String> {
        let mut expected = BTreeMap::from([("syslog default tcp".to_string(), "default".to_string())]);
        for tenant in &self.tenants {
            for message in [format!("hec {}", tenant.name), format!("syslog {} tcp", tenant.name), format!("syslog {} udp", tenant.name)] {
                expected.insert(message, tenant.name.to_string());
            }
        }
        expected
    }
}

/// The message of a stored event: syslog's parsed message ends with the text sent.
fn message_key(event: &Value, expected: &BTreeMap<String, String>) -> Option<String> {
    let message = event["message"].as_str()?;
    expected.keys().find(|key| message.ends_with(key.as_str())).cloned()
}

#[test]
fn each_source_stamps_its_tenant_on_the_stored_events() {
    let setup = TwoTenants::start();
    let (status, health) = curl(&[&setup.instance.api_url("/api/v1/health")]).unwrap();
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&health).unwrap();
    for name in ["syslog_tcp", "syslog_udp.syslog-acme", "syslog_tcp.syslog-globex"] {
        assert!(health["listeners"].get(name).is_some(), "listener {name} in {health}");
    }

    setup.ingest();
    let expected = setup.expected();
    let events = setup.instance.wait_events("limit=100", expected.len()).unwrap();
    let stored: BTreeMap<String, String> = events
        .iter()
        .filter_map(|event| Some((message_key(event, &expected)?, event["tenant"].as_str()?.to_string())))
        .collect();
    assert_eq!(stored, expected, "{events:#?}");
    // The syslog listeners of a tenant are sources of their own.
    let acme_syslog: Vec<&Value> = events.iter().filter(|event| event["source"]["name"] == "syslog-acme").collect();
    assert_eq!(acme_syslog.len(), 2);
    assert!(acme_syslog.iter().all(|event| event["tenant"] == "acme"));
    // HEC events of two tenants with the same user are two events, each its tenant's.
    let hec: Vec<&Value> = events.iter().filter(|event| event["source"]["kind"] == "hec").collect();
    assert_eq!(hec.len(), 2);
    assert_ne!(hec[0]["id"], hec[1]["id"]);
}

#[test]
fn a_bad_tenant_name_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[[sources.hec.tokens]]\ntoken = \"some-token-0123456789abcdefghij\"\ntenant = \"Acme Corp\"\n";
    let error = match Instance::start(dir.path(), extra, &[]) {
        Ok(_) => panic!("an instance started with tenant \"Acme Corp\""),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("tenant name \"Acme Corp\" may hold only a-z, 0-9"), "{error}");
    assert!(error.contains("securewatch.toml:"), "the error names the file and line: {error}");
}

/// A rule both tenants' HEC events match (sourcetype `linux_secure` is `product: linux, service: auth`).
const FAILED_PASSWORD_RULE: &str = "title: Failed password
id: 7a2e4c10-0000-4000-8000-000000000001
status: test
level: medium
logsource:
  product: linux
  service: auth
detection:
  selection:
    message|contains: 'Failed password'
  condition: selection
";

/// An API token of `tenant` with `role`, made with `securewatch token create` against the
/// running instance's data directory.
fn token_of(instance: &Instance, tenant: &str, role: &str) -> String {
    let output = std::process::Command::new(binary())
        .args(["token", "create", "--name", &format!("{tenant}-{role}"), "--role", role, "--tenant", tenant, "--data-dir"])
        .arg(&instance.data_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// `GET path` with `token` as JSON; the answer must be 200.
fn read(instance: &Instance, token: &str, path: &str) -> Value {
    let (status, body) = curl(&["-H", &format!("Authorization: Bearer {token}"), &instance.api_url(path)]).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Every element of `items` (a JSON array) has `tenant` == `tenant`; returns how many there are.
fn all_of(items: &Value, tenant: &str, what: &str) -> usize {
    let items = items.as_array().unwrap_or_else(|| panic!("{what}: not an array: {items}"));
    for item in items {
        assert_eq!(item["tenant"], tenant, "{what} of another tenant: {item}");
    }
    items.len()
}

#[test]
fn a_caller_of_one_tenant_sees_only_its_tenant_on_every_read_route() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("failed.yml"), FAILED_PASSWORD_RULE).unwrap();
    let alerts_file = rules.path().join("alerts.json");
    std::fs::write(&alerts_file, "this line is not a Wazuh alert\n").unwrap();
    let config = format!(
        "[detection]\nenabled = true\nrules_dir = \"{}\"\n\n[sources.wazuh]\nenabled = true\npath = \"{}\"\npoll_interval_ms = 50\ntenant = \"acme\"\n\n",
        rules.path().display(),
        alerts_file.display()
    );
    let setup = TwoTenants::start_with(&config);
    let instance = &setup.instance;
    setup.ingest();
    for tenant in &setup.tenants {
        let body = format!(r#"{{"host": "{0}-web", "sourcetype": "linux_secure", "event": "Failed password for alice from 10.0.0.1"}}"#, tenant.name);
        let auth = format!("Authorization: Splunk {}", tenant.token);
        let (status, answer) = curl(&["-X", "POST", &instance.hec_url("/services/collector/event"), "-H", &auth, "--data-binary", &body]).unwrap();
        assert_eq!(status, 200, "{answer}");
    }

    // Everything stored, seen by the generated admin token (all tenants).
    let admin = instance.api_token();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let events = read(instance, &admin, "/api/v1/events?limit=100");
        let alerts = read(instance, &admin, "/api/v1/alerts");
        let dead = read(instance, &admin, "/api/v1/dead-letters");
        let counts = (events.as_array().unwrap().len(), alerts.as_array().map_or(0, Vec::len), dead.as_array().unwrap().len());
        if counts == (setup.expected().len() + 2, 2, 1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "stored (events, alerts, dead letters) = {counts:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let tokens: Vec<(&str, String)> = ["acme", "globex"].into_iter().map(|tenant| (tenant, token_of(instance, tenant, "admin"))).collect();
    for (_, token) in &tokens {
        // A state-changing call of each tenant, for the audit log.
        let (status, body) = curl(&["-X", "POST", "-H", &format!("Authorization: Bearer {token}"), &instance.api_url("/api/v1/rules/reload")]).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let alert_of = |tenant: &str| -> String {
        let alerts = read(instance, &admin, "/api/v1/alerts");
        let alert = alerts.as_array().unwrap().iter().find(|alert| alert["tenant"] == tenant).cloned().unwrap();
        alert["id"].as_str().unwrap().to_string()
    };
    for (tenant, token) in &tokens {
        let other = if *tenant == "acme" { "globex" } else { "acme" };
        let events = read(instance, token, "/api/v1/events?limit=100");
        let own_events = all_of(&events, tenant, "event");
        assert_eq!(own_events, 4, "{tenant}: HEC, syslog TCP and UDP, the failed password: {events}");

        let dead = read(instance, token, "/api/v1/dead-letters");
        assert_eq!(all_of(&dead, tenant, "dead letter"), usize::from(*tenant == "acme"), "{dead}");

        let alerts = read(instance, token, "/api/v1/alerts");
        assert_eq!(all_of(&alerts, tenant, "alert"), 1, "{alerts}");
        let own = read(instance, token, &format!("/api/v1/alerts/{}", alert_of(tenant)));
        all_of(&own["events"], tenant, "alert evidence");
        let path = format!("/api/v1/alerts/{}", alert_of(other));
        let (status, _) = curl(&["-H", &format!("Authorization: Bearer {token}"), &instance.api_url(&path)]).unwrap();
        assert_eq!(status, 404, "{tenant} reads {other}'s alert");

        let series = read(instance, token, "/api/v1/dashboards/timeseries?by=source&bucket=1m");
        let counted: u64 = series["series"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|series| series["points"].as_array().unwrap().iter())
            .map(|point| point["count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, own_events as u64, "{tenant}: dashboard counts of its own events only: {series}");
        let top = read(instance, token, "/api/v1/dashboards/top?field=host&n=10").to_string();
        assert!(top.contains(&format!("{tenant}-web")) && !top.contains(&format!("{other}-web")), "{tenant}: {top}");

        let audit = read(instance, token, "/api/v1/audit");
        let entries = audit.as_array().or_else(|| audit["entries"].as_array()).unwrap_or_else(|| panic!("{audit}"));
        assert!(!entries.is_empty(), "{tenant} sees its own reload in the audit log");
        for entry in entries {
            assert_eq!(entry["tenant"], *tenant, "{tenant} sees an audit entry of another tenant: {entry}");
        }
    }
}
