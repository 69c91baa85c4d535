//! Tenants through the real binary: two tenants ingest over HEC (their own tokens) and syslog
//! (their own listeners, `logger` over TCP and UDP), and every stored event carries its
//! source's tenant, read back through the API.
//!
//! The API reads here see every tenant (access control comes with the auth branch);
//! [`TwoTenants`] is the setup an API-level isolation test reuses: start it, then read with
//! each tenant's credentials and compare with [`TwoTenants::expected`].

use std::collections::BTreeMap;

use securewatch_tests::instance::{curl, free_port, logger, Instance};
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
        let tenants = [
            TenantSources { name: "acme", token: "acme-hec-token-0123456789abcdef", syslog_port: free_port() },
            TenantSources { name: "globex", token: "globex-hec-token-0123456789abcd", syslog_port: free_port() },
        ];
        let mut extra = String::new();
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
