//! `[api.auth]`: whether credentials are required, API tokens, JWT verification, custom roles.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::roles::{check_permission, BUILT_IN_ROLES};

/// Shortest API token accepted (characters): shorter ones can be guessed.
pub const MIN_TOKEN_CHARS: usize = 32;

/// A secret read from the configuration: never shown by `Debug` or serialised back.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// Whether the API asks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every route but liveness and readiness needs a credential (the default).
    #[default]
    On,
    /// Nobody is asked: only on a loopback address, with a warning at every start.
    Off,
}

/// `[api.auth]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `on` (default) or `off`.
    pub mode: AuthMode,
    /// API tokens of the configuration (besides those of the tokens file in the data directory).
    pub tokens: Vec<ApiTokenConfig>,
    /// JWT bearer tokens from an identity provider.
    pub jwt: Option<JwtConfig>,
    /// Custom roles: name → permissions (`resource:action`, `resource:*` or `*`).
    pub roles: BTreeMap<String, Vec<String>>,
    /// Serve the detailed `/api/v1/health` without a credential.
    pub open_health: bool,
    /// Serve `/metrics` without a credential.
    pub open_metrics: bool,
    /// Refused credentials one peer (IP address) may present per minute before it is answered
    /// 429 for the rest of that minute; 0: no limit.
    pub failed_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::On,
            tokens: Vec::new(),
            jwt: None,
            roles: BTreeMap::new(),
            open_health: false,
            open_metrics: false,
            failed_per_minute: 20,
        }
    }
}

/// `[[api.auth.tokens]]`: one API token. Give its SHA-256 (`token_sha256`, hex), or the token
/// from a file (`token_file`) or an environment variable (`token_env`); `token` in the file
/// itself works but puts the secret in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiTokenConfig {
    /// The identity's name (audit log, `token list`).
    pub name: String,
    /// The token itself (prefer `token_sha256`, `token_file` or `token_env`).
    pub token: Option<Secret>,
    /// File holding the token (first line).
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the token.
    pub token_env: Option<String>,
    /// SHA-256 of the token, 64 hex digits (`securewatch token create` prints it).
    pub token_sha256: Option<String>,
    /// Roles (built-in `viewer`, `analyst`, `engineer`, `admin`, or custom).
    pub roles: Vec<String>,
    /// Tenants the token sees (`*`: all); default `default`.
    pub tenants: Vec<String>,
    /// When the token stops working.
    pub expires: Option<DateTime<Utc>>,
}

/// `[api.auth.jwt]`: bearer JWTs signed by an identity provider.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud` (one of the token's audiences).
    pub audience: String,
    /// JWKS URL of the provider (keys by `kid`, fetched at start and on an unknown `kid`).
    pub jwks_url: Option<String>,
    /// Public keys in PEM files, for providers without a JWKS.
    pub public_keys: Vec<JwtKeyConfig>,
    /// Algorithms accepted: any of `RS256`, `ES256`, `EdDSA` (never `none` or HMAC).
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// Claim naming the identity.
    pub subject_claim: String,
    /// Claim holding role names (a string or an array of strings).
    pub roles_claim: String,
    /// Claim holding tenant names (`*`: all).
    pub tenants_claim: String,
    /// Claim values mapped to roles (e.g. a group `sw-admins` → `admin`); values not listed
    /// are taken as role names.
    pub role_map: BTreeMap<String, String>,
    /// Least time between two JWKS fetches caused by unknown `kid`s, seconds.
    pub jwks_refetch_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            issuer: String::new(),
            audience: String::new(),
            jwks_url: None,
            public_keys: Vec::new(),
            algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
            leeway_secs: 30,
            subject_claim: "sub".into(),
            roles_claim: "roles".into(),
            tenants_claim: "tenants".into(),
            role_map: BTreeMap::new(),
            jwks_refetch_secs: 30,
        }
    }
}

/// `[[api.auth.jwt.public_keys]]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtKeyConfig {
    /// PEM file of the public key.
    pub file: PathBuf,
    /// `RS256`, `ES256` or `EdDSA`.
    pub algorithm: String,
    /// The `kid` tokens name it by; without one it is tried for every token.
    pub kid: Option<String>,
}

/// The asymmetric algorithms a JWT may use.
pub const JWT_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];

impl AuthConfig {
    /// Checks what the types cannot: names, roles, permissions, token lengths, JWT settings.
    /// Tokens from files and the environment are checked when they are read.
    pub fn validate(&self) -> Result<(), String> {
        for (name, permissions) in &self.roles {
            if BUILT_IN_ROLES.iter().any(|(built_in, _)| built_in == name) {
                return Err(format!("roles.{name}: a built-in role cannot be redefined"));
            }
            for permission in permissions {
                check_permission(permission).map_err(|error| format!("roles.{name}: {error}"))?;
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for token in &self.tokens {
            let place = format!("tokens[{:?}]", token.name);
            if token.name.trim().is_empty() {
                return Err("tokens: every token needs a name".into());
            }
            if !names.insert(token.name.as_str()) {
                return Err(format!("{place}: the name is used twice"));
            }
            let sources = [token.token.is_some(), token.token_file.is_some(), token.token_env.is_some(), token.token_sha256.is_some()];
            if sources.iter().filter(|given| **given).count() != 1 {
                return Err(format!("{place}: give exactly one of token, token_file, token_env, token_sha256"));
            }
            if let Some(secret) = &token.token {
                check_token_length(secret.expose()).map_err(|error| format!("{place}: {error}"))?;
            }
            if let Some(hash) = &token.token_sha256 {
                if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("{place}: token_sha256 must be 64 hex digits"));
                }
            }
            if token.roles.is_empty() {
                return Err(format!("{place}: give at least one role"));
            }
            for role in &token.roles {
                self.check_role(role).map_err(|error| format!("{place}: {error}"))?;
            }
        }
        if let Some(jwt) = &self.jwt {
            if jwt.issuer.is_empty() || jwt.audience.is_empty() {
                return Err("jwt: issuer and audience must be set".into());
            }
            if jwt.jwks_url.is_none() && jwt.public_keys.is_empty() {
                return Err("jwt: give jwks_url or public_keys".into());
            }
            if let Some(url) = &jwt.jwks_url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!("jwt.jwks_url: {url:?} is not an http(s) URL"));
                }
            }
            if jwt.algorithms.is_empty() {
                return Err("jwt.algorithms: give at least one of RS256, ES256, EdDSA".into());
            }
            for algorithm in jwt.algorithms.iter().chain(jwt.public_keys.iter().map(|key| &key.algorithm)) {
                if !JWT_ALGORITHMS.contains(&algorithm.as_str()) {
                    return Err(format!("jwt: algorithm {algorithm:?} is not accepted; use RS256, ES256 or EdDSA"));
                }
            }
            if jwt.leeway_secs > 300 {
                return Err("jwt.leeway_secs: at most 300".into());
            }
            for role in jwt.role_map.values() {
                self.check_role(role).map_err(|error| format!("jwt.role_map: {error}"))?;
            }
        }
        Ok(())
    }

    /// `Ok` when `role` is built in or configured.
    pub fn check_role(&self, role: &str) -> Result<(), String> {
        if BUILT_IN_ROLES.iter().any(|(name, _)| *name == role) || self.roles.contains_key(role) {
            Ok(())
        } else {
            let mut known: Vec<&str> = BUILT_IN_ROLES.iter().map(|(name, _)| *name).collect();
            known.extend(self.roles.keys().map(String::as_str));
            Err(format!("unknown role {role:?} (known: {})", known.join(", ")))
        }
    }
}

/// `Ok` for a token of at least [`MIN_TOKEN_CHARS`] characters.
pub fn check_token_length(token: &str) -> Result<(), String> {
    let length = token.trim().chars().count();
    if length < MIN_TOKEN_CHARS {
        return Err(format!("API tokens need at least {MIN_TOKEN_CHARS} characters (this one has {length})"));
    }
    Ok(())
}
