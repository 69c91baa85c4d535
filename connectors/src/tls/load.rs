//! Reads the PEM files of a `tls` table and builds the rustls server configuration from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use super::config::{ClientAuth, TlsConfig};

/// Why a certificate, key or CA file cannot be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("TLS: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the kind its key needs.
    #[error("TLS: {path} holds no {what}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What was looked for (`PEM certificate`, `PEM private key`).
        what: &'static str,
    },
    /// A PEM file is malformed.
    #[error("TLS: {path} is not valid PEM: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// rustls refused the key, the pair or the CA bundle (e.g. key and certificate differ).
    #[error("TLS: {what}: {reason}")]
    Refused {
        /// Which part (`cert_file and key_file`, `client_ca_file`).
        what: &'static str,
        /// rustls's message.
        reason: String,
    },
}

/// The bytes of the files a configuration names, as last read.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct FileSet {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for FileSet {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("FileSet").finish_non_exhaustive()
    }
}

impl FileSet {
    /// Reads the certificate, key and CA files.
    pub fn read(config: &TlsConfig) -> Result<FileSet, TlsError> {
        let read = |path: &Path| std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source });
        Ok(FileSet {
            cert: read(&config.cert_file)?,
            key: read(&config.key_file)?,
            client_ca: config.client_ca_file.as_deref().map(read).transpose()?,
        })
    }

    /// The subject and end of validity of the server certificate, for logs.
    pub fn describe(&self) -> String {
        let first = CertificateDer::pem_slice_iter(&self.cert).next().and_then(Result::ok);
        let parsed = first.as_ref().and_then(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok());
        parsed.map_or_else(String::new, |(_, certificate)| {
            format!("{} (valid until {})", certificate.subject(), certificate.validity().not_after)
        })
    }
}

/// The process's one crypto provider for listeners: ring, as reqwest and sqlx use.
pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration (TLS 1.2 and 1.3 only) from files read by [`FileSet::read`].
pub(super) fn server_config(config: &TlsConfig, files: &FileSet, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let chain = certificates(&config.cert_file, &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing { path: config.key_file.clone(), what: "PEM private key" },
        other => TlsError::Pem { path: config.key_file.clone(), reason: other.to_string() },
    })?;
    let certified = rustls::sign::CertifiedKey::from_der(chain, key, &provider)
        .map_err(|error| TlsError::Refused { what: "cert_file and key_file", reason: error.to_string() })?;
    let verifier: Arc<dyn ClientCertVerifier> = match config.client_auth() {
        ClientAuth::Anon => Arc::new(rustls::server::NoClientAuth),
        ClientAuth::Certvalid | ClientAuth::Name => {
            let path = config.client_ca_file.clone().unwrap_or_default();
            let mut roots = RootCertStore::empty();
            for certificate in certificates(&path, files.client_ca.as_deref().unwrap_or_default())? {
                roots.add(certificate).map_err(|error| TlsError::Refused { what: "client_ca_file", reason: error.to_string() })?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|error| TlsError::Refused { what: "client_ca_file", reason: error.to_string() })?
        }
        ClientAuth::Fingerprint => Arc::new(AnyClientCertificate { provider: Arc::clone(&provider) }),
    };
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::Refused { what: "protocol versions", reason: error.to_string() })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    server.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    if alpn.is_empty() {
        // Syslog: the server never writes after the handshake, and its senders never read. A
        // TLS 1.3 session ticket sent anyway sits unread in the sender's socket, so the sender's
        // close becomes a reset, which discards what the server had not read yet (measured:
        // 5,076 of 20,000 messages stored over one connection).
        server.send_tls13_tickets = 0;
    }
    Ok(Arc::new(server))
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem { path: path.to_path_buf(), reason: error.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Missing { path: path.to_path_buf(), what: "PEM certificate" });
    }
    Ok(chain)
}

/// `fingerprint` mode: asks for a client certificate and checks that the client holds its key
/// (the handshake signature); the fingerprint itself is checked once the handshake is done.
#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
