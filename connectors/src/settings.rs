//! Why a config section refuses a setting: the typed error every component's `validate` returns.

/// A refused setting of a config section, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// A count, size or interval that must be positive is zero.
    #[error("{key} must be at least 1")]
    Zero {
        /// The key, as spelled in the config file.
        key: &'static str,
    },
    /// A path is set but empty.
    #[error("{key} must not be an empty path")]
    EmptyPath {
        /// The key, as spelled in the config file.
        key: &'static str,
    },
    /// A setting below another one that it must be at least.
    #[error("{key} ({value} {unit}) must be at least {floor_key} ({floor} {unit}): {why}")]
    Below {
        /// The key, as spelled in the config file.
        key: &'static str,
        /// Its value.
        value: u64,
        /// The key it must be at least.
        floor_key: &'static str,
        /// That key's value.
        floor: u64,
        /// The unit both are in, as the keys' names say.
        unit: &'static str,
        /// Why.
        why: &'static str,
    },
    /// A setting above the most that can run.
    #[error("{key} ({value}) must be at most {max}: {why}")]
    Above {
        /// The key, as spelled in the config file.
        key: &'static str,
        /// Its value.
        value: u64,
        /// The most accepted.
        max: u64,
        /// Why that is the most.
        why: &'static str,
    },
    /// A path that must stay inside the data directory: relative, without `..`.
    #[error("{key} ({path:?}) must be a relative path inside the data directory, without `..`")]
    OutsideDataDir {
        /// The key, as spelled in the config file.
        key: &'static str,
        /// The path as configured.
        path: String,
    },
    /// Any other refused value, with the reason.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, as spelled in the config file.
        key: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

impl SettingError {
    /// `Err(Zero { key })` when `value` is zero.
    pub fn positive(key: &'static str, value: u64) -> Result<(), SettingError> {
        if value == 0 {
            return Err(SettingError::Zero { key });
        }
        Ok(())
    }

    /// `Err(Zero { key })` when `value` is zero, `Err(Above { .. })` when it is over `max`.
    pub fn within(key: &'static str, value: u64, max: u64, why: &'static str) -> Result<(), SettingError> {
        SettingError::positive(key, value)?;
        if value > max {
            return Err(SettingError::Above { key, value, max, why });
        }
        Ok(())
    }

    /// `Err(EmptyPath)` or `Err(OutsideDataDir)` unless `path` is a non-empty relative path
    /// made only of plain names (no root, no `..`, no `.`-only path), so that joined to the
    /// data directory it stays inside it.
    pub fn inside_data_dir(key: &'static str, path: &str) -> Result<(), SettingError> {
        use std::path::{Component, Path};
        if path.trim().is_empty() {
            return Err(SettingError::EmptyPath { key });
        }
        let components: Vec<Component> = Path::new(path).components().collect();
        let plain = components.iter().all(|part| matches!(part, Component::Normal(_) | Component::CurDir));
        if !plain || !components.iter().any(|part| matches!(part, Component::Normal(_))) {
            return Err(SettingError::OutsideDataDir { key, path: path.to_string() });
        }
        Ok(())
    }

    /// An [`SettingError::Invalid`] for `key`.
    pub fn invalid(key: &'static str, reason: impl Into<String>) -> SettingError {
        SettingError::Invalid { key, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        assert_eq!(SettingError::positive("batch_size", 0).unwrap_err().to_string(), "batch_size must be at least 1");
        assert!(SettingError::positive("batch_size", 3).is_ok());
        assert_eq!(SettingError::EmptyPath { key: "geoip" }.to_string(), "geoip must not be an empty path");
        assert_eq!(SettingError::invalid("url", "not a URL").to_string(), "url: not a URL");
    }

    #[test]
    fn within_refuses_zero_and_values_above_the_most() {
        assert!(SettingError::within("workers", 64, 64, "why").is_ok());
        assert_eq!(SettingError::within("workers", 0, 64, "why"), Err(SettingError::Zero { key: "workers" }));
        let error = SettingError::within("workers", 10_000, 64, "too many threads").unwrap_err();
        assert_eq!(error.to_string(), "workers (10000) must be at most 64: too many threads");
    }

    #[test]
    fn paths_must_stay_inside_the_data_directory() {
        for good in ["securewatch.db", "db/sw.db", "./sw.db", "a/./b.db"] {
            assert!(SettingError::inside_data_dir("file", good).is_ok(), "{good}");
        }
        for bad in ["../x.db", "../../x.db", "/tmp/x.db", "db/../../x.db", "a/..", ".", "./"] {
            let error = SettingError::inside_data_dir("file", bad).unwrap_err();
            assert!(matches!(error, SettingError::OutsideDataDir { .. }), "{bad}: {error}");
            assert!(error.to_string().contains("inside the data directory"), "{error}");
        }
        assert_eq!(SettingError::inside_data_dir("file", " "), Err(SettingError::EmptyPath { key: "file" }));
    }
}
