//! Configuration of the syslog source (UDP, TCP and TLS listeners).

use std::net::{Ipv4Addr, SocketAddr};

use securewatch_schemas::Tenant;
use serde::{Deserialize, Serialize};

use crate::settings::SettingError;
use crate::tls::TlsConfig;

/// The default listen address for both UDP and TCP: loopback, unprivileged port.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5514);

/// The most `max_connections`: each connection holds a file descriptor, and 65 536 is far above
/// the usual per-process descriptor limit (`ulimit -n`) already.
pub const MAX_CONNECTIONS: u64 = 65_536;

/// `[sources.syslog]`: receives syslog over UDP and TCP.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// Whether `securewatch run` starts this source (default true).
    pub enabled: bool,
    /// Instance name: the `source` metrics label and `Event.source.name` (default `syslog`).
    pub name: String,
    /// UDP address to listen on (default `127.0.0.1:5514`); `""` or `"off"` disables UDP.
    #[serde(with = "optional_address")]
    pub udp_listen: Option<SocketAddr>,
    /// TCP address to listen on (default `127.0.0.1:5514`); `""` or `"off"` disables TCP.
    #[serde(with = "optional_address")]
    pub tcp_listen: Option<SocketAddr>,
    /// TCP address for syslog over TLS (RFC 5425; 6514 is its port), or `"off"` (the
    /// default). Needs `[sources.syslog.tls]`.
    #[serde(with = "optional_address")]
    pub tls_listen: Option<SocketAddr>,
    /// Certificate, key and client authentication of `tls_listen` (`[sources.syslog.tls]`);
    /// also used by the `[[sources.syslog.listeners]]` that have no `tls` of their own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Longest accepted message in bytes (default 65536). Longer datagrams and TCP frames are
    /// skipped and counted as rejected with reason `too_large`.
    pub max_message_bytes: usize,
    /// Most TCP connections served at once (default 1024, at most [`MAX_CONNECTIONS`]); further
    /// ones are closed at once and counted in `securewatch_source_connections_refused_total`.
    pub max_connections: usize,
    /// Most records per enqueued batch (default 512; also capped by the queue capacity).
    pub batch_size: usize,
    /// When `max_connections` are open, a new connection closes the one that has sent nothing
    /// for longest, if that is at least this many milliseconds (default 1000), instead of being
    /// refused: idle connections cannot lock senders out for longer. 0 never closes one (always
    /// refuse).
    pub evict_idle_after_ms: u64,
    /// The UDP socket's receive buffer in bytes (the kernel may double it and caps it at
    /// `net.core.rmem_max`); 0 keeps the system default. Datagrams that find it full are dropped
    /// by the kernel and counted in `securewatch_source_kernel_drops_total`.
    pub udp_receive_buffer_bytes: usize,
    /// The tenant of every message received on `udp_listen` and `tcp_listen` (default
    /// `default`; 1–64 characters of `a-z 0-9 - _`, starting with a letter or digit).
    pub tenant: Tenant,
    /// More listeners, each with its own name, addresses and tenant
    /// (`[[sources.syslog.listeners]]`); the limits above apply to each.
    pub listeners: Vec<SyslogListenerConfig>,
}

/// `[[sources.syslog.listeners]]`: one more pair of syslog listeners for one tenant.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogListenerConfig {
    /// Instance name: the `source` metrics label and `Event.source.name` (default
    /// `syslog-<tenant>`).
    #[serde(default)]
    pub name: Option<String>,
    /// UDP address, or `"off"` (the default).
    #[serde(with = "optional_address", default)]
    pub udp_listen: Option<SocketAddr>,
    /// TCP address, or `"off"` (the default).
    #[serde(with = "optional_address", default)]
    pub tcp_listen: Option<SocketAddr>,
    /// TLS address (RFC 5425), or `"off"` (the default).
    #[serde(with = "optional_address", default)]
    pub tls_listen: Option<SocketAddr>,
    /// TLS settings of `tls_listen` (default: those of `[sources.syslog.tls]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// The tenant of every message received here (required).
    pub tenant: Tenant,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig {
            enabled: true,
            name: "syslog".to_string(),
            udp_listen: Some(DEFAULT_LISTEN),
            tcp_listen: Some(DEFAULT_LISTEN),
            tls_listen: None,
            tls: None,
            max_message_bytes: 65536,
            max_connections: 1024,
            batch_size: 512,
            evict_idle_after_ms: 1_000,
            udp_receive_buffer_bytes: 0,
            tenant: Tenant::default(),
            listeners: Vec::new(),
        }
    }
}

impl SyslogConfig {
    /// Checks the values that `Default` cannot guarantee; the message names the bad key.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.name.trim().is_empty() {
            return Err(SettingError::invalid("name", "must not be empty"));
        }
        if self.enabled && !self.listens() && self.listeners.is_empty() {
            let reason = "udp_listen, tcp_listen and tls_listen are all \"off\": the source would have nothing to \
                          listen on; set one of them, or enabled = false";
            return Err(SettingError::invalid("enabled", reason));
        }
        SettingError::positive("max_message_bytes", self.max_message_bytes as u64)?;
        let why = "each connection holds a file descriptor and a task; beyond this the process runs out of descriptors";
        SettingError::within("max_connections", self.max_connections as u64, MAX_CONNECTIONS, why)?;
        SettingError::positive("batch_size", self.batch_size as u64)?;
        let mut names = std::collections::HashSet::from([self.name.clone()]);
        let mut addresses = std::collections::HashSet::new();
        let main = SyslogConfig { listeners: Vec::new(), ..self.clone() };
        for (number, instance) in std::iter::once(main).chain(self.extra_instances()).enumerate() {
            if number > 0 {
                if instance.name.trim().is_empty() {
                    return Err(SettingError::invalid("listeners.name", "must not be empty"));
                }
                if !instance.listens() {
                    let reason = format!("listener {} has none of udp_listen, tcp_listen, tls_listen", instance.name);
                    return Err(SettingError::invalid("listeners", reason));
                }
                if !names.insert(instance.name.clone()) {
                    let reason = format!("the name {} is used twice", instance.name);
                    return Err(SettingError::invalid("listeners.name", reason));
                }
            }
            match (&instance.tls_listen, &instance.tls) {
                (Some(address), None) => {
                    let reason = format!("tls_listen {address} needs a certificate: add [sources.syslog.tls]");
                    return Err(SettingError::invalid("tls", reason));
                }
                (_, Some(tls)) => tls.validate()?,
                (None, None) => {}
            }
            let used = [("udp", instance.udp_listen), ("tcp", instance.tcp_listen), ("tcp", instance.tls_listen)];
            for (protocol, address) in used.into_iter().filter_map(|(p, a)| a.map(|a| (p, a))) {
                if !addresses.insert((protocol, address)) {
                    let reason = format!("{protocol} {address} is listened on twice");
                    return Err(SettingError::invalid("listeners", reason));
                }
            }
        }
        Ok(())
    }

    /// Each pair of listeners as a configuration of its own: this one (with its own addresses
    /// and tenant), then one per `[[sources.syslog.listeners]]` entry with the shared limits.
    /// A pair with both addresses off is left out.
    pub fn instances(&self) -> Vec<SyslogConfig> {
        let main = SyslogConfig { listeners: Vec::new(), ..self.clone() };
        let main = main.listens().then_some(main);
        main.into_iter().chain(self.extra_instances()).collect()
    }

    /// Whether this instance has an address of its own to listen on.
    fn listens(&self) -> bool {
        self.udp_listen.is_some() || self.tcp_listen.is_some() || self.tls_listen.is_some()
    }

    /// The `[[sources.syslog.listeners]]` entries as configurations of their own.
    fn extra_instances(&self) -> impl Iterator<Item = SyslogConfig> + '_ {
        self.listeners.iter().map(|listener| SyslogConfig {
            name: listener.name.clone().unwrap_or_else(|| format!("{}-{}", self.name, listener.tenant)),
            udp_listen: listener.udp_listen,
            tcp_listen: listener.tcp_listen,
            tls_listen: listener.tls_listen,
            tls: listener.tls.clone().or_else(|| self.tls.clone()),
            tenant: listener.tenant.clone(),
            listeners: Vec::new(),
            ..self.clone()
        })
    }
}

/// A listen address that can be switched off: TOML has no null, so `""` or `"off"` means none.
mod optional_address {
    use std::net::SocketAddr;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    const DISABLED: &str = "off";

    pub fn serialize<S: Serializer>(
        address: &Option<SocketAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match address {
            Some(address) => serializer.collect_str(address),
            None => serializer.serialize_str(DISABLED),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case(DISABLED) {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|error| {
            D::Error::custom(format!(
                "invalid listen address {text:?} (ip:port or \"off\"): {error}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_5514() {
        let config: SyslogConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, SyslogConfig::default());
        assert_eq!(config.udp_listen, Some("127.0.0.1:5514".parse().unwrap()));
        assert_eq!(config.tcp_listen, config.udp_listen);
        assert!(config.enabled);
        assert_eq!(
            (config.max_message_bytes, config.max_connections, config.batch_size),
            (65536, 1024, 512)
        );
        config.validate().unwrap();
    }

    #[test]
    fn listeners_can_be_switched_off_and_round_trip() {
        let config: SyslogConfig =
            serde_json::from_str(r#"{"udp_listen": "off", "tcp_listen": "0.0.0.0:6514"}"#).unwrap();
        assert_eq!(config.udp_listen, None);
        assert_eq!(config.tcp_listen, Some("0.0.0.0:6514".parse().unwrap()));
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<SyslogConfig>(&text).unwrap(), config);
        let empty: SyslogConfig = serde_json::from_str(r#"{"tcp_listen": ""}"#).unwrap();
        assert_eq!(empty.tcp_listen, None);
    }

    #[test]
    fn listeners_per_tenant_become_instances_of_their_own() {
        let config: SyslogConfig = serde_json::from_str(
            r#"{"tenant": "acme", "listeners": [{"tenant": "globex", "tcp_listen": "127.0.0.1:6600"},
                {"name": "initech-udp", "udp_listen": "127.0.0.1:6601", "tenant": "initech"}]}"#,
        )
        .unwrap();
        config.validate().unwrap();
        let instances = config.instances();
        let summary: Vec<(&str, &str, Option<SocketAddr>, Option<SocketAddr>)> = instances
            .iter()
            .map(|c| (c.name.as_str(), c.tenant.as_str(), c.udp_listen, c.tcp_listen))
            .collect();
        let local = |port: u16| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(
            summary,
            [
                ("syslog", "acme", local(5514), local(5514)),
                ("syslog-globex", "globex", None, local(6600)),
                ("initech-udp", "initech", local(6601), None),
            ]
        );
        assert!(instances.iter().all(|c| c.listeners.is_empty() && c.batch_size == 512));
    }

    #[test]
    fn listeners_must_have_a_tenant_an_address_and_no_shared_address() {
        let refused = serde_json::from_str::<SyslogConfig>(r#"{"listeners": [{"tcp_listen": "127.0.0.1:1"}]}"#);
        assert!(refused.unwrap_err().to_string().contains("tenant"));
        let bad_name = serde_json::from_str::<SyslogConfig>(r#"{"tenant": "ACME"}"#).unwrap_err();
        assert!(bad_name.to_string().contains("tenant name"), "{bad_name}");
        let parse = |text: &str| serde_json::from_str::<SyslogConfig>(text).unwrap().validate().unwrap_err().to_string();
        assert!(parse(r#"{"listeners": [{"tenant": "a"}]}"#).contains("none of udp_listen, tcp_listen, tls_listen"));
        let twice = parse(r#"{"listeners": [{"tenant": "a", "tcp_listen": "127.0.0.1:5514"}]}"#);
        assert!(twice.contains("tcp 127.0.0.1:5514 is listened on twice"), "{twice}");
        let names = parse(
            r#"{"listeners": [{"tenant": "a", "tcp_listen": "127.0.0.1:1"}, {"tenant": "a", "tcp_listen": "127.0.0.1:2"}]}"#,
        );
        assert!(names.contains("syslog-a is used twice"), "{names}");
        let main_name = parse(r#"{"listeners": [{"name": "syslog", "tenant": "a", "tcp_listen": "127.0.0.1:1"}]}"#);
        assert!(main_name.contains("syslog is used twice"), "{main_name}");
        let only_extra: SyslogConfig = serde_json::from_str(
            r#"{"udp_listen": "off", "tcp_listen": "off", "listeners": [{"tenant": "a", "tcp_listen": "127.0.0.1:1"}]}"#,
        )
        .unwrap();
        only_extra.validate().unwrap();
        assert_eq!(only_extra.instances().len(), 1);
    }

    #[test]
    fn tls_listeners_need_a_certificate_and_inherit_the_main_one() {
        let parse = |text: &str| serde_json::from_str::<SyslogConfig>(text).unwrap();
        let missing = parse(r#"{"tls_listen": "127.0.0.1:6514"}"#).validate().unwrap_err().to_string();
        assert!(missing.contains("needs a certificate"), "{missing}");
        let config = parse(
            r#"{"udp_listen": "off", "tcp_listen": "off", "tls_listen": "127.0.0.1:6514",
                "tls": {"cert_file": "s.pem", "key_file": "s.key"},
                "listeners": [{"tenant": "acme", "tls_listen": "127.0.0.1:6515"},
                    {"tenant": "globex", "tls_listen": "127.0.0.1:6516",
                     "tls": {"cert_file": "g.pem", "key_file": "g.key", "client_ca_file": "ca.pem"}}]}"#,
        );
        config.validate().unwrap();
        let files: Vec<String> = config.instances().iter().map(|c| c.tls.as_ref().unwrap().cert_file.display().to_string()).collect();
        assert_eq!(files, ["s.pem", "s.pem", "g.pem"]);
        let same_port = parse(
            r#"{"tls_listen": "127.0.0.1:5514", "tls": {"cert_file": "s.pem", "key_file": "s.key"}}"#,
        );
        assert!(same_port.validate().unwrap_err().to_string().contains("listened on twice"));
    }

    #[test]
    fn unknown_keys_bad_addresses_and_zero_limits_are_refused() {
        assert!(serde_json::from_str::<SyslogConfig>(r#"{"framing": "x"}"#).is_err());
        let error =
            serde_json::from_str::<SyslogConfig>(r#"{"udp_listen": "nowhere"}"#).unwrap_err();
        assert!(error.to_string().contains("nowhere"), "{error}");
        let config = SyslogConfig { batch_size: 0, ..SyslogConfig::default() };
        assert!(config.validate().unwrap_err().to_string().contains("batch_size"));
        let config = SyslogConfig { max_connections: usize::MAX, ..SyslogConfig::default() };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.starts_with(&format!("max_connections ({}) must be at most 65536: ", usize::MAX)), "{error}");
    }
}
