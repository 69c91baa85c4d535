//! The client certificate after the handshake: its subject (kept on events) and the `name` and `fingerprint` checks.

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

use super::config::ClientAuth;

/// Why a client that completed the handshake is refused (the `reason` label of
/// [`super::PEERS_REFUSED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRefusal {
    /// No certificate although the mode requires one.
    NoCertificate,
    /// The certificate could not be parsed.
    Unparsable,
    /// `name`: no subjectAltName DNS name nor common name is permitted.
    NameNotPermitted,
    /// `fingerprint`: the certificate's SHA-256 is not listed.
    FingerprintNotPermitted,
}

impl PeerRefusal {
    /// The metrics label.
    pub fn reason(self) -> &'static str {
        match self {
            PeerRefusal::NoCertificate => "no_certificate",
            PeerRefusal::Unparsable => "unparsable_certificate",
            PeerRefusal::NameNotPermitted => "name_not_permitted",
            PeerRefusal::FingerprintNotPermitted => "fingerprint_not_permitted",
        }
    }
}

/// What a listener requires of a client certificate beyond what the handshake checked.
#[derive(Debug, Clone)]
pub(super) struct PeerPolicy {
    pub mode: ClientAuth,
    /// Lower-cased permitted names (`name`).
    pub permitted_peers: Vec<String>,
    /// Permitted SHA-256 fingerprints (`fingerprint`).
    pub fingerprints: Vec<[u8; 32]>,
}

impl PeerPolicy {
    /// The identity of the client (its certificate's subject, `None` without a certificate),
    /// or why it is refused.
    pub fn check(&self, end_entity: Option<&CertificateDer<'_>>) -> Result<Option<String>, PeerRefusal> {
        let Some(der) = end_entity else {
            return match self.mode {
                ClientAuth::Anon => Ok(None),
                _ => Err(PeerRefusal::NoCertificate),
            };
        };
        let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|_| PeerRefusal::Unparsable)?;
        match self.mode {
            ClientAuth::Name => {
                let names = certificate_names(&certificate);
                if !names.iter().any(|name| self.permitted_peers.iter().any(|permitted| name_matches(permitted, name))) {
                    return Err(PeerRefusal::NameNotPermitted);
                }
            }
            ClientAuth::Fingerprint => {
                let digest: [u8; 32] = Sha256::digest(der.as_ref()).into();
                if !self.fingerprints.contains(&digest) {
                    return Err(PeerRefusal::FingerprintNotPermitted);
                }
            }
            ClientAuth::Anon | ClientAuth::Certvalid => {}
        }
        Ok(Some(certificate.subject().to_string()))
    }
}

/// The names `name` mode compares: the subjectAltName DNS names, or the common names when the
/// certificate has no DNS name (as rsyslog does).
fn certificate_names(certificate: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let dns_names: Vec<String> = match certificate.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if !dns_names.is_empty() {
        return dns_names;
    }
    certificate
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// `permitted` (lower-case) against `name`: equal, or `*.rest` with one label before `.rest`.
fn name_matches(permitted: &str, name: &str) -> bool {
    match permitted.strip_prefix("*.") {
        Some(rest) => name
            .strip_suffix(rest)
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => permitted == name,
    }
}

/// The lower-case SHA-256 fingerprint in rsyslog's form (`SHA256:AB:CD:…`), for logs.
pub fn fingerprint_text(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let pairs: Vec<String> = digest.iter().map(|byte| format!("{byte:02X}")).collect();
    format!("SHA256:{}", pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(names: &[&str], common_name: &str) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn policy(mode: ClientAuth, peers: &[&str], fingerprints: Vec<[u8; 32]>) -> PeerPolicy {
        PeerPolicy { mode, permitted_peers: peers.iter().map(|peer| peer.to_string()).collect(), fingerprints }
    }

    #[test]
    fn names_match_the_alt_names_first_then_the_common_name() {
        let with_san = certificate(&["relay.example.com"], "ignored.example.org");
        let by_name = policy(ClientAuth::Name, &["*.example.com"], Vec::new());
        assert_eq!(by_name.check(Some(&with_san)).unwrap().as_deref(), Some("CN=ignored.example.org"));
        let only_cn = policy(ClientAuth::Name, &["ignored.example.org"], Vec::new());
        assert_eq!(only_cn.check(Some(&with_san)), Err(PeerRefusal::NameNotPermitted), "CN is not used when SANs exist");
        let without_san = certificate(&[], "relay.example.org");
        let cn = policy(ClientAuth::Name, &["relay.example.org"], Vec::new());
        assert!(cn.check(Some(&without_san)).is_ok());
        assert_eq!(by_name.check(None), Err(PeerRefusal::NoCertificate));
    }

    #[test]
    fn wildcards_match_exactly_one_label() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "aexample.com"));
        assert!(name_matches("host.example.com", "host.example.com"));
    }

    #[test]
    fn fingerprints_compare_the_whole_certificate() {
        let listed = certificate(&["a.example"], "a");
        let other = certificate(&["a.example"], "a");
        let digest: [u8; 32] = Sha256::digest(listed.as_ref()).into();
        let by_fingerprint = policy(ClientAuth::Fingerprint, &[], vec![digest]);
        assert!(by_fingerprint.check(Some(&listed)).is_ok());
        assert_eq!(by_fingerprint.check(Some(&other)), Err(PeerRefusal::FingerprintNotPermitted));
        assert!(fingerprint_text(listed.as_ref()).starts_with("SHA256:"));
        assert_eq!(policy(ClientAuth::Anon, &[], Vec::new()).check(None), Ok(None));
    }
}
