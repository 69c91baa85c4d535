//! API tokens: generated at random, shown once, stored only as SHA-256 hashes in the tokens file of the data directory (mode 0600), compared in constant time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::{check_token_length, ApiTokenConfig};

/// The tokens file in the data directory: names, hashes, roles, tenants, expiry.
pub const TOKENS_FILE: &str = "api_tokens.json";
/// The generated admin token, kept in the data directory (mode 0600) like the HEC token.
pub const ADMIN_TOKEN_FILE: &str = "api_token";
/// Prefix of generated tokens, so a leaked one is recognisable in a scanner.
pub const TOKEN_PREFIX: &str = "swt_";
/// How often the tokens file is looked at for changes (tokens made or revoked by the CLI).
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Why the tokens could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The tokens file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The tokens file is not what this version writes.
    #[error("{path}: not a tokens file: {source}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A configured token's file or environment variable is not there (yet).
    #[error("[api.auth] tokens[{name:?}]: {message}")]
    Missing {
        /// The token's name.
        name: String,
        /// Why (never the token).
        message: String,
    },
    /// A configured token could not be resolved.
    #[error("[api.auth] tokens[{name:?}]: {message}")]
    Config {
        /// The token's name.
        name: String,
        /// Why (never the token).
        message: String,
    },
    /// A name is taken, unknown, or a role unknown.
    #[error("{0}")]
    Invalid(String),
}

/// One token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredToken {
    /// The identity's name.
    pub name: String,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Tenants (`*`: all).
    pub tenants: Vec<String>,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// When it stops working.
    pub expires: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokensFile {
    tokens: Vec<StoredToken>,
}

/// A new random token: the prefix and 64 hex digits (256 bits).
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{TOKEN_PREFIX}{hex}")
}

/// SHA-256 of a token (its surrounding white space ignored).
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// The hex spelling of a hash.
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (index, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// The tokens of the file in `data_dir` (none when it does not exist).
pub fn read_file(data_dir: &Path) -> Result<Vec<StoredToken>, TokenError> {
    let path = data_dir.join(TOKENS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let file: TokensFile = serde_json::from_str(&text)
                .map_err(|source| TokenError::Format { path: path.display().to_string(), source })?;
            Ok(file.tokens)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(TokenError::File { path: path.display().to_string(), source }),
    }
}

/// Replaces the tokens file in `data_dir` (written aside with mode 0600, then renamed).
pub fn write_file(data_dir: &Path, tokens: &[StoredToken]) -> Result<(), TokenError> {
    let path = data_dir.join(TOKENS_FILE);
    let text = serde_json::to_string_pretty(&TokensFile { tokens: tokens.to_vec() }).expect("tokens serialise");
    let aside = data_dir.join(format!("{TOKENS_FILE}.new"));
    write_private(&aside, &text).and_then(|()| std::fs::rename(&aside, &path))
        .map_err(|source| TokenError::File { path: path.display().to_string(), source })
}

/// Writes `text` to a new file readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Adds a new token to the file in `data_dir` and returns it (shown once, never stored).
pub fn create(
    data_dir: &Path,
    name: &str,
    roles: Vec<String>,
    tenants: Vec<String>,
    expires: Option<DateTime<Utc>>,
) -> Result<String, TokenError> {
    let token = generate_token();
    add(data_dir, name, &token, roles, tenants, expires)?;
    Ok(token)
}

/// Adds the hash of `token` to the file in `data_dir` under `name`.
fn add(
    data_dir: &Path,
    name: &str,
    token: &str,
    roles: Vec<String>,
    tenants: Vec<String>,
    expires: Option<DateTime<Utc>>,
) -> Result<(), TokenError> {
    if name.trim().is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c == '/') {
        return Err(TokenError::Invalid("a token name has 1 to 64 characters, no slashes or control characters".into()));
    }
    if roles.is_empty() {
        return Err(TokenError::Invalid("give at least one role".into()));
    }
    let mut tokens = read_file(data_dir)?;
    if tokens.iter().any(|stored| stored.name == name) {
        return Err(TokenError::Invalid(format!("a token named {name:?} exists; revoke it first")));
    }
    let tenants = if tenants.is_empty() { vec![securewatch_schemas::DEFAULT_TENANT.to_string()] } else { tenants };
    let sha256 = hex(&hash_token(token));
    tokens.push(StoredToken { name: name.to_string(), sha256, roles, tenants, created: Utc::now(), expires });
    write_file(data_dir, &tokens)
}

/// Removes the token `name` from the file in `data_dir`; `false` when there was none.
pub fn revoke(data_dir: &Path, name: &str) -> Result<bool, TokenError> {
    let mut tokens = read_file(data_dir)?;
    let before = tokens.len();
    tokens.retain(|token| token.name != name);
    if tokens.len() == before {
        return Ok(false);
    }
    write_file(data_dir, &tokens)?;
    Ok(true)
}

/// On a first start (no tokens file, no configured credentials): a new admin token for every
/// tenant, stored hashed in the tokens file and kept in [`ADMIN_TOKEN_FILE`] (mode 0600) for
/// the operator. Returns it so the caller prints it once.
pub fn ensure_admin_token(data_dir: &Path) -> Result<Option<String>, TokenError> {
    if data_dir.join(TOKENS_FILE).exists() {
        return Ok(None);
    }
    let kept = data_dir.join(ADMIN_TOKEN_FILE);
    let token = generate_token();
    write_private(&kept, &format!("{token}\n")).map_err(|source| TokenError::File { path: kept.display().to_string(), source })?;
    add(data_dir, "admin", &token, vec!["admin".into()], vec!["*".into()], None)?;
    Ok(Some(token))
}

/// A token the registry knows: from the configuration or the tokens file.
#[derive(Debug, Clone)]
pub struct KnownToken {
    /// The identity's name.
    pub name: String,
    hash: [u8; 32],
    /// Roles.
    pub roles: Vec<String>,
    /// Tenants (`*`: all).
    pub tenants: Vec<String>,
    /// When it stops working.
    pub expires: Option<DateTime<Utc>>,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No token has this hash.
    Unknown,
    /// It expired.
    Expired,
}

/// Resolves the configured tokens: hashes as given, files and environment variables read now.
pub fn resolve_configured(tokens: &[ApiTokenConfig]) -> Result<Vec<KnownToken>, TokenError> {
    tokens
        .iter()
        .map(|token| {
            let failed = |message: String| TokenError::Config { name: token.name.clone(), message };
            let missing = |message: String| TokenError::Missing { name: token.name.clone(), message };
            let secret = if let Some(secret) = &token.token {
                Some(secret.expose().to_string())
            } else if let Some(file) = &token.token_file {
                Some(std::fs::read_to_string(file).map_err(|error| missing(format!("token_file {}: {error}", file.display())))?)
            } else if let Some(variable) = &token.token_env {
                Some(std::env::var(variable).map_err(|_| missing(format!("token_env: {variable} is not set")))?)
            } else {
                None
            };
            let hash = match (secret, &token.token_sha256) {
                (Some(secret), _) => {
                    check_token_length(&secret).map_err(failed)?;
                    hash_token(&secret)
                }
                (None, Some(hash)) => parse_hex(hash).ok_or_else(|| failed("token_sha256 must be 64 hex digits".into()))?,
                (None, None) => return Err(failed("no token given".into())),
            };
            let tenants =
                if token.tenants.is_empty() { vec![securewatch_schemas::DEFAULT_TENANT.to_string()] } else { token.tenants.clone() };
            Ok(KnownToken { name: token.name.clone(), hash, roles: token.roles.clone(), tenants, expires: token.expires })
        })
        .collect()
}

/// The tokens in force: the configured ones and those of the tokens file, which is read again
/// when it changes (at most every [`RELOAD_CHECK`]), so `securewatch token create` and
/// `revoke` apply to a running server.
#[derive(Debug)]
pub struct TokenRegistry {
    configured: Vec<KnownToken>,
    file: Option<PathBuf>,
    loaded: Mutex<Loaded>,
}

/// When [`TokenRegistry::refresh`] reads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    Always,
    Changed,
    Due,
}

#[derive(Debug, Default)]
struct Loaded {
    tokens: Vec<KnownToken>,
    modified: Option<SystemTime>,
    checked: Option<Instant>,
}

impl TokenRegistry {
    /// The configured tokens plus, when `data_dir` is given, its tokens file.
    pub fn new(configured: Vec<KnownToken>, data_dir: Option<&Path>) -> Result<TokenRegistry, TokenError> {
        let registry =
            TokenRegistry { configured, file: data_dir.map(|dir| dir.join(TOKENS_FILE)), loaded: Mutex::new(Loaded::default()) };
        registry.refresh(Refresh::Always)?;
        Ok(registry)
    }

    /// Reads the tokens file again when it changed: `Always` reads it, `Changed` looks at its
    /// time now, `Due` only when the last look is [`RELOAD_CHECK`] old.
    fn refresh(&self, when: Refresh) -> Result<(), TokenError> {
        let Some(path) = &self.file else { return Ok(()) };
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if when == Refresh::Due && loaded.checked.is_some_and(|checked| checked.elapsed() < RELOAD_CHECK) {
            return Ok(());
        }
        loaded.checked = Some(Instant::now());
        let modified = std::fs::metadata(path).and_then(|metadata| metadata.modified()).ok();
        if when != Refresh::Always && modified == loaded.modified {
            return Ok(());
        }
        let directory = path.parent().unwrap_or(Path::new("."));
        let stored = read_file(directory)?;
        loaded.tokens = stored
            .into_iter()
            .filter_map(|token| {
                let hash = parse_hex(&token.sha256)?;
                Some(KnownToken { name: token.name, hash, roles: token.roles, tenants: token.tenants, expires: token.expires })
            })
            .collect();
        loaded.modified = modified;
        tracing::debug!(tokens = loaded.tokens.len(), "API tokens file read.");
        Ok(())
    }

    /// The token whose hash equals the presented token's. Every known hash is compared in
    /// constant time, so neither the position of a match nor the token's length shows in the
    /// time taken.
    /// A token unknown so far makes the registry look at the file at once (a token made a
    /// moment ago); revocations apply within [`RELOAD_CHECK`].
    pub fn verify(&self, presented: &str) -> Result<KnownToken, TokenRefusal> {
        let hash = hash_token(presented);
        match self.lookup(&hash, Refresh::Due) {
            Err(TokenRefusal::Unknown) => self.lookup(&hash, Refresh::Changed),
            found => found,
        }
    }

    fn lookup(&self, hash: &[u8; 32], when: Refresh) -> Result<KnownToken, TokenRefusal> {
        if let Err(error) = self.refresh(when) {
            tracing::warn!(%error, "Cannot read the API tokens file; keeping the tokens read before.");
        }
        let loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut found: Option<&KnownToken> = None;
        for known in self.configured.iter().chain(loaded.tokens.iter()) {
            if bool::from(known.hash.ct_eq(hash)) && found.is_none() {
                found = Some(known);
            }
        }
        let known = found.ok_or(TokenRefusal::Unknown)?;
        if known.expires.is_some_and(|expires| expires <= Utc::now()) {
            return Err(TokenRefusal::Expired);
        }
        Ok(known.clone())
    }

    /// Whether any credential exists (configured or in the file).
    pub fn is_empty(&self) -> bool {
        self.configured.is_empty() && self.loaded.lock().map(|loaded| loaded.tokens.is_empty()).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_privately_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let admin = ensure_admin_token(dir.path()).unwrap().expect("first start generates one");
        assert!(admin.starts_with(TOKEN_PREFIX) && admin.len() == 68);
        assert!(ensure_admin_token(dir.path()).unwrap().is_none(), "only once");
        let file = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(!file.contains(&admin) && file.contains(&hex(&hash_token(&admin))), "{file}");
        #[cfg(unix)]
        for name in [TOKENS_FILE, ADMIN_TOKEN_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        assert_eq!(std::fs::read_to_string(dir.path().join(ADMIN_TOKEN_FILE)).unwrap().trim(), admin);

        let registry = TokenRegistry::new(Vec::new(), Some(dir.path())).unwrap();
        let known = registry.verify(&admin).unwrap();
        assert_eq!((known.name.as_str(), known.roles.clone(), known.tenants.clone()), ("admin", vec!["admin".into()], vec!["*".into()]));
        assert_eq!(registry.verify("swt_nope").unwrap_err(), TokenRefusal::Unknown);
        assert_eq!(registry.verify("").unwrap_err(), TokenRefusal::Unknown);

        let grafana = create(dir.path(), "grafana", vec!["viewer".into()], vec!["acme".into()], None).unwrap();
        assert!(create(dir.path(), "grafana", vec!["viewer".into()], Vec::new(), None).is_err(), "names are unique");
        let expired = create(dir.path(), "old", vec!["viewer".into()], Vec::new(), Some(Utc::now() - chrono::Duration::hours(1))).unwrap();
        // The registry reads the changed file (at most once a second).
        std::thread::sleep(RELOAD_CHECK + Duration::from_millis(50));
        assert_eq!(registry.verify(&grafana).unwrap().tenants, ["acme"]);
        assert_eq!(registry.verify(&expired).unwrap_err(), TokenRefusal::Expired);
        assert!(revoke(dir.path(), "grafana").unwrap());
        assert!(!revoke(dir.path(), "grafana").unwrap());
        std::thread::sleep(RELOAD_CHECK + Duration::from_millis(50));
        assert_eq!(registry.verify(&grafana).unwrap_err(), TokenRefusal::Unknown);
    }

    #[test]
    fn configured_tokens_resolve_from_hash_file_and_environment_and_short_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let token = generate_token();
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        let configured = [
            ApiTokenConfig { name: "a".into(), token_sha256: Some(hex(&hash_token(&token))), roles: vec!["viewer".into()], ..Default::default() },
            ApiTokenConfig { name: "b".into(), token_file: Some(file), roles: vec!["viewer".into()], ..Default::default() },
        ];
        let registry = TokenRegistry::new(resolve_configured(&configured).unwrap(), None).unwrap();
        assert_eq!(registry.verify(&token).unwrap().name, "a", "the first match wins");
        let short = [ApiTokenConfig { name: "c".into(), token_env: Some("SECUREWATCH_TEST_SHORT_TOKEN_UNSET".into()), ..Default::default() }];
        let error = resolve_configured(&short).unwrap_err().to_string();
        assert!(error.contains("is not set"), "{error}");
        let short_file = dir.path().join("short");
        std::fs::write(&short_file, "tooshort").unwrap();
        let short = [ApiTokenConfig { name: "d".into(), token_file: Some(short_file), ..Default::default() }];
        let error = resolve_configured(&short).unwrap_err().to_string();
        assert!(error.contains("at least 32 characters") && !error.contains("tooshort"), "{error}");
    }
}
