//! The one severity scale of SecureWatch (the syslog scale) and the mappings onto it.

use serde::{Deserialize, Serialize};

/// Severity on the RFC 5424 scale: 0 is the most severe, 7 the least.
///
/// Every source maps onto it: syslog uses its own severity, Wazuh `rule.level` (0–15) is
/// mapped by [`Severity::from_wazuh_level`], HEC reads an optional `severity` field by name
/// or number ([`Severity::from_name`]) and defaults to `Informational`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// 0: the system is unusable.
    Emergency = 0,
    /// 1: action must be taken at once.
    Alert = 1,
    /// 2: critical conditions.
    Critical = 2,
    /// 3: error conditions.
    Error = 3,
    /// 4: warning conditions.
    Warning = 4,
    /// 5: normal but significant.
    Notice = 5,
    /// 6: informational.
    Informational = 6,
    /// 7: debug-level messages.
    Debug = 7,
}

impl Severity {
    /// All levels, most severe first.
    pub const ALL: [Severity; 8] = [
        Severity::Emergency,
        Severity::Alert,
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
        Severity::Informational,
        Severity::Debug,
    ];

    /// The numeric code 0..=7.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// From the numeric code; values above 7 are clamped to `Debug`.
    pub fn from_code(code: u8) -> Severity {
        Severity::ALL[usize::from(code.min(7))]
    }

    /// Lower-case name, as in JSON and the API.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Emergency => "emergency",
            Severity::Alert => "alert",
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Informational => "informational",
            Severity::Debug => "debug",
        }
    }

    /// Parses a name (several common spellings) or a numeric code 0..=7.
    pub fn from_name(text: &str) -> Option<Severity> {
        let lower = text.trim().to_ascii_lowercase();
        if let Ok(code) = lower.parse::<u8>() {
            return (code <= 7).then(|| Severity::from_code(code));
        }
        Some(match lower.as_str() {
            "emerg" | "emergency" | "panic" => Severity::Emergency,
            "alert" => Severity::Alert,
            "crit" | "critical" | "fatal" => Severity::Critical,
            "err" | "error" | "high" => Severity::Error,
            "warn" | "warning" | "medium" => Severity::Warning,
            "notice" | "low" => Severity::Notice,
            "info" | "informational" | "information" => Severity::Informational,
            "debug" | "trace" => Severity::Debug,
            _ => return None,
        })
    }

    /// Maps a Wazuh rule level (0–15) onto the scale:
    ///
    /// | Wazuh level | severity |
    /// |---|---|
    /// | 0–2 | debug |
    /// | 3 | informational |
    /// | 4–5 | notice |
    /// | 6–7 | warning |
    /// | 8–10 | error |
    /// | 11–12 | critical |
    /// | 13–14 | alert |
    /// | 15+ | emergency |
    pub fn from_wazuh_level(level: u64) -> Severity {
        match level {
            0..=2 => Severity::Debug,
            3 => Severity::Informational,
            4..=5 => Severity::Notice,
            6..=7 => Severity::Warning,
            8..=10 => Severity::Error,
            11..=12 => Severity::Critical,
            13..=14 => Severity::Alert,
            _ => Severity::Emergency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_clamp() {
        for severity in Severity::ALL {
            assert_eq!(Severity::from_code(severity.code()), severity);
            assert_eq!(Severity::from_name(severity.name()), Some(severity));
        }
        assert_eq!(Severity::from_code(42), Severity::Debug);
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(Severity::from_name("WARN"), Some(Severity::Warning));
        assert_eq!(Severity::from_name("3"), Some(Severity::Error));
        assert_eq!(Severity::from_name("9"), None);
        assert_eq!(Severity::from_name("bogus"), None);
    }

    #[test]
    fn wazuh_levels_are_monotone() {
        assert_eq!(Severity::from_wazuh_level(3), Severity::Informational);
        assert_eq!(Severity::from_wazuh_level(10), Severity::Error);
        assert_eq!(Severity::from_wazuh_level(15), Severity::Emergency);
        let mut previous = Severity::Debug;
        for level in 0..=16 {
            let now = Severity::from_wazuh_level(level);
            assert!(now <= previous, "level {level} maps to a less severe value");
            previous = now;
        }
    }
}
