//! JWT bearer tokens: signatures checked against configured PEM keys or a JWKS (cached by `kid`, refetched on an unknown `kid` at most every `jwks_refetch_secs`), asymmetric algorithms only, `iss`/`aud`/`exp`/`nbf` checked with a small leeway.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::config::JwtConfig;

/// How long a JWKS fetch may take.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document read.
const JWKS_MAX_BYTES: usize = 1 << 20;

/// Why a JWT could not be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    /// A PEM key could not be read or parsed.
    #[error("[api.auth.jwt] public key {file}: {message}")]
    Key {
        /// The PEM file.
        file: String,
        /// Why.
        message: String,
    },
}

/// Why a JWT was refused (for the log and the audit entry; the client only hears "invalid").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtRefusal {
    /// Not a JWT, or its header does not parse (this includes `alg: none`).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm that is not accepted.
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    /// No key with the token's `kid` (after a refetch when allowed).
    #[error("no key for kid {0:?}")]
    UnknownKey(String),
    /// Signature, expiry, not-before, issuer or audience failed.
    #[error("{0}")]
    Invalid(String),
}

/// A verified token's claims.
pub type Claims = Map<String, Value>;

/// A key to check signatures with and the one algorithm it is for.
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies JWTs as configured. One per API.
pub struct JwtVerifier {
    config: JwtConfig,
    algorithms: Vec<Algorithm>,
    /// Configured PEM keys, with their `kid` when given.
    pem_keys: Vec<(Option<String>, Key)>,
    /// JWKS keys by `kid`.
    jwks: RwLock<HashMap<String, std::sync::Arc<Key>>>,
    /// When an unknown `kid` last caused a fetch (the refetch rate limit); the lock also
    /// serialises fetches.
    fetched: Mutex<Option<Instant>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("JwtVerifier").field("issuer", &self.config.issuer).finish_non_exhaustive()
    }
}

fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

impl JwtVerifier {
    /// Reads the PEM keys; the JWKS is fetched by [`JwtVerifier::prefetch`].
    pub fn new(config: &JwtConfig) -> Result<JwtVerifier, JwtSetupError> {
        let mut pem_keys = Vec::new();
        for entry in &config.public_keys {
            let failed = |message: String| JwtSetupError::Key { file: entry.file.display().to_string(), message };
            let pem = std::fs::read(&entry.file).map_err(|error| failed(error.to_string()))?;
            let algorithm = algorithm(&entry.algorithm).ok_or_else(|| failed(format!("algorithm {:?}", entry.algorithm)))?;
            let key = match algorithm {
                Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
                _ => DecodingKey::from_ed_pem(&pem),
            }
            .map_err(|error| failed(error.to_string()))?;
            pem_keys.push((entry.kid.clone(), Key { algorithm, key }));
        }
        let client = reqwest::Client::builder().timeout(JWKS_TIMEOUT).build().expect("an HTTP client without options builds");
        Ok(JwtVerifier {
            config: config.clone(),
            algorithms: config.algorithms.iter().filter_map(|name| algorithm(name)).collect(),
            pem_keys,
            jwks: RwLock::new(HashMap::new()),
            fetched: Mutex::new(None),
            client,
        })
    }

    /// Fetches the JWKS once at start; a failure is logged and retried on the first token.
    pub async fn prefetch(&self) {
        if self.config.jwks_url.is_some() {
            self.refetch(true).await;
        }
    }

    /// Fetches the JWKS: at start (`initial`), or for an unknown `kid` unless one caused a
    /// fetch within `jwks_refetch_secs`. An unreachable or broken JWKS keeps the keys cached.
    async fn refetch(&self, initial: bool) {
        let Some(url) = &self.config.jwks_url else { return };
        let mut fetched = self.fetched.lock().await;
        let interval = Duration::from_secs(self.config.jwks_refetch_secs);
        if !initial {
            if fetched.is_some_and(|at| at.elapsed() < interval) {
                return;
            }
            *fetched = Some(Instant::now());
        }
        match self.fetch(url).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS fetched.");
                metrics::counter!("securewatch_api_jwks_fetches_total", "outcome" => "ok").increment(1);
                *self.jwks.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = keys;
            }
            Err(error) => {
                metrics::counter!("securewatch_api_jwks_fetches_total", "outcome" => "failed").increment(1);
                tracing::warn!(%error, "Cannot fetch the JWKS; keeping the keys cached before.");
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<HashMap<String, std::sync::Arc<Key>>, String> {
        let response = self.client.get(url).send().await.map_err(|error| error.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = response.bytes().await.map_err(|error| error.to_string())?;
        if body.len() > JWKS_MAX_BYTES {
            return Err(format!("larger than {JWKS_MAX_BYTES} bytes"));
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|error| format!("not a JWKS: {error}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = &jwk.common.key_id else { continue };
            // Only asymmetric keys, each for the one algorithm its type signs with.
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => Algorithm::ES256,
                AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                _ => continue,
            };
            if let Some(declared) = jwk.common.key_algorithm {
                if format!("{declared:?}") != format!("{algorithm:?}") {
                    continue;
                }
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid.clone(), std::sync::Arc::new(Key { algorithm, key }));
                }
                Err(error) => tracing::warn!(kid, %error, "JWKS key skipped."),
            }
        }
        Ok(keys)
    }

    /// Verifies `token`'s header, signature and claims; returns the claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, JwtRefusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| JwtRefusal::Malformed(error.to_string()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(JwtRefusal::Algorithm(format!("{:?}", header.alg)));
        }
        let mut candidates: Vec<std::sync::Arc<Key>> = Vec::new();
        let mut pem: Vec<&Key> = Vec::new();
        match &header.kid {
            Some(kid) => {
                pem.extend(self.pem_keys.iter().filter(|(key_id, _)| key_id.as_ref().is_none_or(|id| id == kid)).map(|(_, key)| key));
                let cached = self.jwks.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(kid).cloned();
                match cached {
                    Some(key) => candidates.push(key),
                    None if self.config.jwks_url.is_some() => {
                        self.refetch(false).await;
                        let fetched = self.jwks.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(kid).cloned();
                        candidates.extend(fetched);
                    }
                    None => {}
                }
                if candidates.is_empty() && pem.is_empty() {
                    return Err(JwtRefusal::UnknownKey(kid.clone()));
                }
            }
            None => {
                pem.extend(self.pem_keys.iter().map(|(_, key)| key));
                candidates.extend(self.jwks.read().unwrap_or_else(|poisoned| poisoned.into_inner()).values().cloned());
            }
        }
        let mut last = JwtRefusal::Invalid("no key for this algorithm".into());
        let keys = candidates.iter().map(|key| key.as_ref()).chain(pem);
        for key in keys.filter(|key| key.algorithm == header.alg) {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(key.algorithm)) {
                Ok(data) => return Ok(data.claims),
                Err(error) => last = JwtRefusal::Invalid(error.to_string()),
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = self.config.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation
    }

    /// The identity's name, roles and tenants from verified claims.
    pub fn identity(&self, claims: &Claims) -> (String, Vec<String>, Vec<String>) {
        let strings = |name: &str| -> Vec<String> {
            match claims.get(name) {
                Some(Value::String(one)) => one.split([' ', ',']).filter(|part| !part.is_empty()).map(str::to_string).collect(),
                Some(Value::Array(many)) => many.iter().filter_map(|value| value.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            }
        };
        let subject = claims.get(&self.config.subject_claim).and_then(Value::as_str).unwrap_or("-").to_string();
        let roles = strings(&self.config.roles_claim)
            .into_iter()
            .map(|value| self.config.role_map.get(&value).cloned().unwrap_or(value))
            .collect();
        (format!("jwt:{subject}"), roles, strings(&self.config.tenants_claim))
    }
}
