//! The `tls` table of a listener: certificate files, client authentication, reload interval.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::settings::SettingError;

/// How a listener authenticates its clients; the names are rsyslog's `StreamDriverAuthMode`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    Anon,
    /// A client certificate is required and must chain to `client_ca_file`.
    Certvalid,
    /// As `certvalid`, and one of the certificate's names (subjectAltName DNS names, else its
    /// common name) must match `permitted_peers`.
    Name,
    /// A client certificate is required (self-signed is fine) and its SHA-256 fingerprint must
    /// be one of `fingerprints`.
    Fingerprint,
}

impl ClientAuth {
    /// The name as written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Anon => "anon",
            ClientAuth::Certvalid => "certvalid",
            ClientAuth::Name => "name",
            ClientAuth::Fingerprint => "fingerprint",
        }
    }
}

/// `tls`: serve TLS 1.2/1.3 with a PEM certificate chain and key, optionally verifying clients.
///
/// The files are read again every `reload_interval_ms` and on SIGHUP; a changed, valid set is
/// used for new connections (open ones finish on the old), a broken one is logged, counted in
/// `securewatch_tls_reloads_total{result="failed"}` and the previous set kept.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM bundle of the CAs client certificates must chain to (`certvalid` and `name`).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `anon`, `certvalid`, `name` or `fingerprint`; default `certvalid` when `client_ca_file`
    /// is set, else `anon`.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// For `name`: the names a client certificate may carry; `*.example.com` matches one label.
    #[serde(default)]
    pub permitted_peers: Vec<String>,
    /// For `fingerprint`: SHA-256 fingerprints of the permitted client certificates, as
    /// `SHA256:AB:CD:…` (rsyslog's form) or 64 hex digits.
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// How often the files are checked for changes, in milliseconds (default 10000; 0: only
    /// on SIGHUP).
    #[serde(default = "default_reload_interval_ms")]
    pub reload_interval_ms: u64,
}

const fn default_reload_interval_ms() -> u64 {
    10_000
}

impl TlsConfig {
    /// The client authentication in force: as configured, else from `client_ca_file`.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth.unwrap_or(match self.client_ca_file {
            Some(_) => ClientAuth::Certvalid,
            None => ClientAuth::Anon,
        })
    }

    /// Checks what parsing cannot: the files each mode needs, non-empty lists, well-formed
    /// fingerprints. The files themselves are read when the listener starts.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.cert_file.as_os_str().is_empty() {
            return Err(SettingError::EmptyPath { key: "tls.cert_file" });
        }
        if self.key_file.as_os_str().is_empty() {
            return Err(SettingError::EmptyPath { key: "tls.key_file" });
        }
        let mode = self.client_auth();
        match mode {
            ClientAuth::Certvalid | ClientAuth::Name if self.client_ca_file.is_none() => {
                let reason = format!("client_auth = \"{}\" needs client_ca_file, the CAs client certificates chain to", mode.as_str());
                return Err(SettingError::invalid("tls.client_ca_file", reason));
            }
            ClientAuth::Name if self.permitted_peers.iter().all(|peer| peer.trim().is_empty()) => {
                let reason = "client_auth = \"name\" needs at least one permitted peer name";
                return Err(SettingError::invalid("tls.permitted_peers", reason));
            }
            ClientAuth::Fingerprint if self.fingerprints.is_empty() => {
                let reason = "client_auth = \"fingerprint\" needs at least one SHA-256 fingerprint";
                return Err(SettingError::invalid("tls.fingerprints", reason));
            }
            _ => {}
        }
        for fingerprint in &self.fingerprints {
            parse_fingerprint(fingerprint).map_err(|reason| SettingError::invalid("tls.fingerprints", reason))?;
        }
        Ok(())
    }

    /// The configured fingerprints as bytes (call after [`TlsConfig::validate`]).
    pub(super) fn fingerprint_bytes(&self) -> Vec<[u8; 32]> {
        self.fingerprints.iter().filter_map(|text| parse_fingerprint(text).ok()).collect()
    }
}

/// A SHA-256 fingerprint from `SHA256:AB:CD:…`, `AB:CD:…` or 64 hex digits.
fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let trimmed = text.trim();
    let hex_part = match trimmed.split_once(':') {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case("sha256") => rest,
        Some((prefix, _)) if prefix.len() > 2 => {
            return Err(format!("{trimmed:?}: only SHA-256 fingerprints are accepted (prefix SHA256:)"));
        }
        _ => trimmed,
    };
    let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
    let invalid = || format!("{trimmed:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)");
    if digits.len() != 64 {
        return Err(invalid());
    }
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[index * 2..index * 2 + 2], 16).map_err(|_| invalid())?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> TlsConfig {
        toml::from_str(&format!("cert_file = \"c.pem\"\nkey_file = \"k.pem\"\n{extra}")).unwrap()
    }

    #[test]
    fn client_auth_defaults_from_the_ca_file() {
        assert_eq!(config("").client_auth(), ClientAuth::Anon);
        assert_eq!(config("client_ca_file = \"ca.pem\"").client_auth(), ClientAuth::Certvalid);
        assert_eq!(config("").reload_interval_ms, 10_000);
        config("").validate().unwrap();
    }

    #[test]
    fn each_mode_needs_its_settings() {
        let error = |extra: &str| config(extra).validate().unwrap_err().to_string();
        assert!(error("client_auth = \"certvalid\"").contains("needs client_ca_file"));
        assert!(error("client_auth = \"name\"\nclient_ca_file = \"ca.pem\"").contains("permitted peer"));
        assert!(error("client_auth = \"fingerprint\"").contains("at least one SHA-256"));
        assert!(error("client_auth = \"fingerprint\"\nfingerprints = [\"SHA1:AB\"]").contains("only SHA-256"));
        assert!(error("client_auth = \"fingerprint\"\nfingerprints = [\"abcd\"]").contains("64 hex digits"));
        assert!(toml::from_str::<TlsConfig>("cert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"x509\"").is_err());
    }

    #[test]
    fn fingerprints_are_read_in_rsyslog_and_plain_forms() {
        let hex = "AB".repeat(32);
        let colons = (0..32).map(|_| "ab").collect::<Vec<_>>().join(":");
        let listed = format!("client_auth = \"fingerprint\"\nfingerprints = [\"SHA256:{colons}\", \"{hex}\"]");
        let parsed = config(&listed);
        parsed.validate().unwrap();
        assert_eq!(parsed.fingerprint_bytes(), vec![[0xab; 32], [0xab; 32]]);
    }
}
