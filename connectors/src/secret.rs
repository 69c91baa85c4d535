//! Backend secrets (passwords) read from an environment variable or a file named in the config, never written in it.

use std::path::Path;

use crate::settings::SettingError;

/// The secret named by `env` (a variable) or `file` (its contents, without the trailing line
/// break); `None` when neither is set. Both set, an unset variable, an unreadable or empty file
/// is an error naming the key (`*_env` / `*_file`) and never the value.
pub fn resolve(
    env_key: &'static str,
    env: Option<&str>,
    file_key: &'static str,
    file: Option<&Path>,
) -> Result<Option<String>, SettingError> {
    resolve_with(env_key, env, file_key, file, |name| std::env::var(name).ok())
}

/// [`resolve`] with the environment given (tests).
pub fn resolve_with(
    env_key: &'static str,
    env: Option<&str>,
    file_key: &'static str,
    file: Option<&Path>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, SettingError> {
    match (env, file) {
        (Some(_), Some(_)) => Err(SettingError::invalid(env_key, format!("set {env_key} or {file_key}, not both"))),
        (Some(name), None) => match lookup(name) {
            Some(value) if !value.is_empty() => Ok(Some(value)),
            _ => Err(SettingError::invalid(env_key, format!("the environment variable {name} is not set or empty"))),
        },
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| SettingError::invalid(file_key, format!("cannot read {}: {error}", path.display())))?;
            let secret = text.strip_suffix('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).unwrap_or(&text);
            if secret.is_empty() {
                return Err(SettingError::invalid(file_key, format!("{} is empty", path.display())));
            }
            Ok(Some(secret.to_string()))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_a_variable_or_a_file_and_errors_never_show_them() {
        let env = |name: &str| (name == "PG_PW").then(|| "s3cret".to_string());
        let resolve = |variable: Option<&str>, file: Option<&Path>| resolve_with("password_env", variable, "password_file", file, env);
        assert_eq!(resolve(Some("PG_PW"), None).unwrap().as_deref(), Some("s3cret"));
        assert!(resolve(Some("UNSET"), None).unwrap_err().to_string().contains("UNSET is not set"));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "from-file\n").unwrap();
        assert_eq!(resolve(None, Some(file.path())).unwrap().as_deref(), Some("from-file"));
        assert!(resolve(Some("PG_PW"), Some(file.path())).unwrap_err().to_string().contains("not both"));
        let error = resolve(None, Some(Path::new("/nonexistent/pw"))).unwrap_err().to_string();
        assert!(error.starts_with("password_file: cannot read /nonexistent/pw"), "{error}");
        assert_eq!(resolve(None, None).unwrap(), None);
    }
}
