//! TLS for the listeners (HEC, the API, syslog over TLS): one rustls acceptor with client-certificate checks and certificates reloaded from disk.
//!
//! A [`TlsConfig`] names a PEM certificate chain and key, and optionally the CA bundle client
//! certificates must chain to; TLS 1.2 and 1.3 only. Clients are checked as rsyslog's
//! `StreamDriverAuthMode`s say ([`ClientAuth`]): `anon`, `certvalid`, `name` (subjectAltName
//! DNS names, else the common name, against `permitted_peers`), `fingerprint` (SHA-256 of the
//! certificate). [`TlsAcceptor::watch`] reads the files again on an interval and on SIGHUP:
//! new connections get the new certificate and CA, open ones finish on the old, and a broken
//! file keeps the previous set (logged, counted in [`RELOADS`]).

mod acceptor;
mod config;
mod load;
mod peer;

pub use acceptor::{Accepted, Reload, TlsAcceptor};
pub use config::{ClientAuth, TlsConfig};
pub use load::TlsError;
pub use peer::{fingerprint_text, PeerRefusal};

/// Counter: TLS handshakes that failed, by `listener` and `reason` (`no_client_certificate`,
/// `bad_client_certificate`, `incompatible_client`, `alert_from_client`, `not_tls`,
/// `protocol_violation`, `timeout`, `closed`, `io_error`, `other`).
pub const HANDSHAKE_FAILURES: &str = "securewatch_tls_handshake_failures_total";

/// Counter: clients refused after the handshake by `client_auth`, by `listener` and `reason`
/// (`no_certificate`, `unparsable_certificate`, `name_not_permitted`,
/// `fingerprint_not_permitted`).
pub const PEERS_REFUSED: &str = "securewatch_tls_peers_refused_total";

/// Counter: certificate reloads, by `listener` and `result` (`loaded`, `failed`).
pub const RELOADS: &str = "securewatch_tls_reloads_total";

#[cfg(test)]
mod tests;

/// Tests: a PEM file holding a throw-away CA that signed nothing, for checking that a peer
/// certificate of another CA is refused.
#[cfg(test)]
pub(crate) fn unrelated_ca_file() -> tempfile::NamedTempFile {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let pem = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), pem).unwrap();
    file
}
