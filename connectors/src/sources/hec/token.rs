//! The HEC token when none is configured: from `SECUREWATCH_HEC_TOKEN`, or generated once and kept.

use std::io::Write;
use std::path::Path;

use rand::Rng;

use super::HecTokenConfig;

/// The generated token could not be kept in the data directory.
#[derive(Debug, thiserror::Error)]
#[error("cannot store the HEC token in {path}")]
pub struct TokenFileError {
    /// The token file.
    pub path: String,
    /// Why writing it failed.
    #[source]
    pub source: std::io::Error,
}

/// Environment variable holding a HEC token.
pub const HEC_TOKEN_ENV: &str = "SECUREWATCH_HEC_TOKEN";
/// File in the data directory that keeps a generated token.
pub const TOKEN_FILE: &str = "hec_token";

/// Where the token in force came from.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenOrigin {
    /// `[[sources.hec.tokens]]` in the config.
    Config,
    /// The [`HEC_TOKEN_ENV`] environment variable.
    Environment,
    /// The token file in the data directory, from an earlier start.
    Stored,
    /// Generated now and written to the token file.
    Generated,
}

/// Makes sure `tokens` holds at least one token: the configured ones win, then the
/// environment, then a token kept in the data directory, else a new one is generated and
/// returned as `Generated`. A generated token is not stored yet: the caller binds its
/// listeners first, then keeps it with [`keep_generated`] and prints it once.
pub fn ensure_hec_token(
    tokens: &mut Vec<HecTokenConfig>,
    from_environment: Option<String>,
    data_dir: &Path,
) -> (TokenOrigin, String) {
    if let Some(first) = tokens.first() {
        return (TokenOrigin::Config, first.token.clone());
    }
    let (origin, token) = match from_environment.filter(|token| !token.trim().is_empty()) {
        Some(token) => (TokenOrigin::Environment, token.trim().to_string()),
        None => {
            let path = data_dir.join(TOKEN_FILE);
            match std::fs::read_to_string(&path) {
                Ok(stored) if !stored.trim().is_empty() => (TokenOrigin::Stored, stored.trim().to_string()),
                _ => (TokenOrigin::Generated, generate_token()),
            }
        }
    };
    tokens.push(HecTokenConfig { name: "default".to_string(), token: token.clone(), ..HecTokenConfig::default() });
    (origin, token)
}

/// Stores a generated token in the data directory (mode 0600), so later starts reuse it.
pub fn keep_generated(data_dir: &Path, token: &str) -> Result<(), TokenFileError> {
    let path = data_dir.join(TOKEN_FILE);
    store_token(&path, token).map_err(|source| TokenFileError { path: path.display().to_string(), source })
}

/// A random token in Splunk's GUID layout.
fn generate_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn store_token(path: &Path, token: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{token}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_then_environment_then_stored_then_generated() {
        let dir = tempfile::tempdir().unwrap();
        let mut configured = vec![HecTokenConfig { name: "a".into(), token: "t1".into(), ..Default::default() }];
        let (origin, token) = ensure_hec_token(&mut configured, Some("env".into()), dir.path());
        assert_eq!((origin, token.as_str()), (TokenOrigin::Config, "t1"));

        let mut tokens = Vec::new();
        let (origin, token) = ensure_hec_token(&mut tokens, Some("env-token".into()), dir.path());
        assert_eq!((origin, token.as_str()), (TokenOrigin::Environment, "env-token"));
        assert_eq!(tokens.len(), 1);

        let mut tokens = Vec::new();
        let (origin, generated) = ensure_hec_token(&mut tokens, None, dir.path());
        assert_eq!(origin, TokenOrigin::Generated);
        assert_eq!(generated.len(), 36);
        assert!(!dir.path().join(TOKEN_FILE).exists(), "kept only once the listeners are bound");
        keep_generated(dir.path(), &generated).unwrap();
        let mut tokens = Vec::new();
        let (origin, stored) = ensure_hec_token(&mut tokens, None, dir.path());
        assert_eq!((origin, stored), (TokenOrigin::Stored, generated));
    }
}
