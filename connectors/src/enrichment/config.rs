//! `[enrichment]`: the reference files (asset inventory, network lists), the IP fields and polling.

use std::collections::BTreeSet;
use std::path::PathBuf;

use securewatch_schemas::DEFAULT_IP_FIELDS;
use serde::{Deserialize, Serialize};

use crate::settings::SettingError;

/// `[enrichment]`: reference files that tag events, reloaded when they change.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichmentConfig {
    /// Asset inventory CSV with the header `key,owner,criticality,tags` (key: IP address or host
    /// name; tags separated by `;`). None by default.
    pub assets: Option<PathBuf>,
    /// Named IP/CIDR lists (`[[enrichment.networks]]`), one address or network per line.
    pub networks: Vec<NetworkList>,
    /// Event fields whose values are looked up as IP addresses (besides the host and the
    /// sender's address).
    pub ip_fields: Vec<String>,
    /// How often the files are checked for changes, in milliseconds (default 1000).
    pub poll_interval_ms: u64,
    /// A MaxMind GeoIP2/GeoLite2 City database (`.mmdb`) that adds the location of IP keys;
    /// read once at start. None by default.
    pub geoip: Option<PathBuf>,
}

/// `[[enrichment.networks]]`: one named IP/CIDR list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkList {
    /// The list's name as tags show it (`internal`, `threat-intel`, ...); letters, digits,
    /// `-`, `_` and `.` only.
    pub name: String,
    /// The file: one IP address or CIDR network per line, `#` comments, blank lines.
    pub path: PathBuf,
}

impl Default for EnrichmentConfig {
    fn default() -> Self {
        EnrichmentConfig {
            assets: None,
            networks: Vec::new(),
            ip_fields: DEFAULT_IP_FIELDS.iter().map(|field| field.to_string()).collect(),
            poll_interval_ms: 1000,
            geoip: None,
        }
    }
}

impl EnrichmentConfig {
    /// Checks what the types cannot; the message names the bad key. Whether the files exist
    /// and parse is checked when the watcher starts.
    pub fn validate(&self) -> Result<(), SettingError> {
        SettingError::positive("poll_interval_ms", self.poll_interval_ms)?;
        if self.assets.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
            return Err(SettingError::EmptyPath { key: "assets" });
        }
        if self.geoip.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
            return Err(SettingError::EmptyPath { key: "geoip" });
        }
        if let Some(field) = self.ip_fields.iter().find(|field| field.trim().is_empty()) {
            return Err(SettingError::invalid("ip_fields", format!("must not contain a blank name ({field:?})")));
        }
        let mut names = BTreeSet::new();
        for list in &self.networks {
            let name_ok = !list.name.is_empty()
                && list.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok {
                let reason =
                    format!("name {:?} must be non-empty and use only letters, digits, '-', '_' and '.'", list.name);
                return Err(SettingError::invalid("networks", reason));
            }
            if !names.insert(list.name.as_str()) {
                return Err(SettingError::invalid("networks", format!("name {:?} is used twice", list.name)));
            }
            if list.path.as_os_str().is_empty() {
                return Err(SettingError::invalid("networks", format!("list {:?} has an empty path", list.name)));
            }
        }
        Ok(())
    }

    /// Whether any reference file or a GeoIP database is configured.
    pub fn is_enabled(&self) -> bool {
        self.assets.is_some() || !self.networks.is_empty() || self.geoip.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrichment_config_parses_and_validates() {
        let text = r#"{
            "assets": "assets.csv",
            "ip_fields": ["src_ip"],
            "poll_interval_ms": 200,
            "networks": [
                {"name": "internal", "path": "internal.txt"},
                {"name": "threat-intel", "path": "intel.txt"}
            ]
        }"#;
        let config: EnrichmentConfig = serde_json::from_str(text).unwrap();
        assert_eq!(config.assets, Some(PathBuf::from("assets.csv")));
        assert_eq!(config.networks[1], NetworkList { name: "threat-intel".into(), path: "intel.txt".into() });
        assert_eq!(config.ip_fields, ["src_ip"]);
        config.validate().unwrap();
        assert!(config.is_enabled());

        let defaults = EnrichmentConfig::default();
        assert!(!defaults.is_enabled() && defaults.validate().is_ok());
        assert!(defaults.ip_fields.contains(&"data.srcip".to_string()));

        let mut twice = config.clone();
        twice.networks[1].name = "internal".into();
        assert!(twice.validate().unwrap_err().to_string().contains("used twice"));
        let mut bad_name = config.clone();
        bad_name.networks[0].name = "in ternal".into();
        assert!(bad_name.validate().unwrap_err().to_string().contains("name"));
        let mut zero = config;
        zero.poll_interval_ms = 0;
        assert!(zero.validate().unwrap_err().to_string().contains("poll_interval_ms"));
        assert!(serde_json::from_str::<EnrichmentConfig>(r#"{"bogus": 1}"#).is_err());
    }
}
