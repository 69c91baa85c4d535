//! The limits of one HTTP listener: as configured (milliseconds, checked bounds) and as served.

use std::time::Duration;

use crate::settings::SettingError;

/// The most `max_connections` of an HTTP listener: each connection holds a file descriptor, and
/// this is already far above the usual open-files limit (the start also bounds it by that limit).
pub const MAX_CONNECTIONS: u64 = 65_536;

/// The longest header or body timeout accepted (one hour).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// The most `body_min_bytes_per_sec` accepted (1 GiB/s).
const MAX_MIN_RATE: u64 = 1 << 30;

/// The HTTP keys of a listener's config table (`[sources.hec]`, `[api]`), as written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// `max_connections`: most connections open at once.
    pub max_connections: usize,
    /// `header_read_timeout_ms`: time for a request's headers, from the connection's opening or
    /// its previous answer; also how long an idle keep-alive connection stays open.
    pub header_read_timeout_ms: u64,
    /// `body_read_timeout_ms`: time for a request body, extended as its bytes arrive.
    pub body_read_timeout_ms: u64,
    /// `body_min_bytes_per_sec`: each this many body bytes received extend the body's time by one second.
    pub body_min_bytes_per_sec: u64,
}

impl HttpSettings {
    /// Defaults for a listener that serves `max_connections` at most.
    pub const fn with_max_connections(max_connections: usize) -> HttpSettings {
        HttpSettings {
            max_connections,
            header_read_timeout_ms: 15_000,
            body_read_timeout_ms: 30_000,
            body_min_bytes_per_sec: 16_384,
        }
    }

    /// Refuses zero values and values above what can run; the error names the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        let why = "each connection holds a file descriptor and a task";
        SettingError::within("max_connections", self.max_connections as u64, MAX_CONNECTIONS, why)?;
        let why = "a longer wait lets a silent client hold its connection for that long";
        SettingError::within("header_read_timeout_ms", self.header_read_timeout_ms, MAX_TIMEOUT_MS, why)?;
        SettingError::within("body_read_timeout_ms", self.body_read_timeout_ms, MAX_TIMEOUT_MS, why)?;
        let why = "1 GiB/s is above what one connection carries";
        SettingError::within("body_min_bytes_per_sec", self.body_min_bytes_per_sec, MAX_MIN_RATE, why)?;
        Ok(())
    }

    /// The limits served, with `shutdown_grace` for requests in flight at shutdown.
    pub fn limits(&self, shutdown_grace: Duration) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections.max(1),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms.max(1)),
            body_min_bytes_per_sec: self.body_min_bytes_per_sec.max(1),
            shutdown_grace,
        }
    }
}

/// What an [`HttpListener`](super::HttpListener) enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections open at once; past it the idlest is closed or the new one refused.
    pub max_connections: usize,
    /// Time for a request's headers (and for a TLS handshake, when there is one); also the
    /// longest an answer waits for a client that stopped reading it.
    pub header_read_timeout: Duration,
    /// Time for a request body before the bytes received extend it.
    pub body_read_timeout: Duration,
    /// Body bytes that extend the body's time by one second.
    pub body_min_bytes_per_sec: u64,
    /// At shutdown, how long requests in flight get to finish before their connections close.
    pub shutdown_grace: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_oversized_settings_are_refused_by_key() {
        let good = HttpSettings::with_max_connections(1024);
        good.validate().unwrap();
        let error = HttpSettings { max_connections: 0, ..good }.validate().unwrap_err();
        assert_eq!(error.to_string(), "max_connections must be at least 1");
        let error = HttpSettings { max_connections: 1 << 20, ..good }.validate().unwrap_err();
        assert!(error.to_string().starts_with("max_connections (1048576) must be at most 65536"), "{error}");
        let error = HttpSettings { header_read_timeout_ms: 0, ..good }.validate().unwrap_err();
        assert!(error.to_string().contains("header_read_timeout_ms"), "{error}");
        let error = HttpSettings { body_read_timeout_ms: MAX_TIMEOUT_MS + 1, ..good }.validate().unwrap_err();
        assert!(error.to_string().contains("body_read_timeout_ms"), "{error}");
        let error = HttpSettings { body_min_bytes_per_sec: 0, ..good }.validate().unwrap_err();
        assert!(error.to_string().contains("body_min_bytes_per_sec"), "{error}");
        let limits = good.limits(Duration::from_secs(5));
        assert_eq!(limits.header_read_timeout, Duration::from_secs(15));
        assert_eq!((limits.max_connections, limits.body_min_bytes_per_sec), (1024, 16_384));
    }
}
