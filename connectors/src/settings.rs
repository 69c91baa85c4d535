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
}
