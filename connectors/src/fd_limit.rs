//! The open-files limit: raised at start towards the hard limit, and the listeners' connection limits fitted under it.

/// Descriptors kept for everything but client connections (the store, the journal, tailed
/// files, sink and bus connections, the runtime's own): this many, or half the limit when it
/// is below twice this.
pub const RESERVED_DESCRIPTORS: u64 = 512;

/// The soft limit is raised at most this far (more descriptors than any listener set can use).
const WANTED_SOFT_LIMIT: u64 = 1 << 20;

/// The process's open-files limit after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The soft limit before raising it.
    pub was: u64,
    /// The soft limit in force: what the process may open.
    pub soft: u64,
    /// The hard limit: the most the soft limit could be raised to.
    pub hard: u64,
}

impl OpenFilesLimit {
    /// Descriptors available to the listeners' connections together.
    pub fn connection_budget(&self) -> u64 {
        self.soft.saturating_sub(RESERVED_DESCRIPTORS.min(self.soft / 2)).max(1)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 2^20) and reports the result.
/// An unlimited limit reads as `u64::MAX`; a failed raise keeps the soft limit as it was.
pub fn raise_open_files_limit() -> OpenFilesLimit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    let was = current.current.unwrap_or(u64::MAX);
    let hard = current.maximum.unwrap_or(u64::MAX);
    let wanted = hard.min(WANTED_SOFT_LIMIT).max(was);
    if wanted == was {
        return OpenFilesLimit { was, soft: was, hard };
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(wanted), maximum: current.maximum }) {
        Ok(()) => OpenFilesLimit { was, soft: wanted, hard },
        Err(error) => {
            tracing::warn!(%error, soft = was, hard, "Cannot raise the open-files limit; keeping it.");
            OpenFilesLimit { was, soft: was, hard }
        }
    }
}

/// Fits the listeners' connection limits (`(listener, max_connections)`) within `budget`
/// descriptors: when their sum is over it, each is scaled down in proportion (at least 1).
/// Returns the listeners lowered, with what they asked for.
pub fn fit_connection_limits(limits: &mut [(&str, &mut usize)], budget: u64) -> Vec<(String, usize)> {
    let total: u64 = limits.iter().map(|(_, limit)| **limit as u64).sum();
    if total <= budget {
        return Vec::new();
    }
    let mut lowered = Vec::new();
    for (name, limit) in limits.iter_mut() {
        let fitted = ((**limit as u128 * budget as u128) / total as u128).max(1) as usize;
        if fitted < **limit {
            lowered.push((name.to_string(), **limit));
            **limit = fitted;
        }
    }
    lowered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_over_the_budget_are_scaled_down_in_proportion() {
        let (mut syslog, mut hec, mut api) = (1024usize, 1024usize, 256usize);
        let lowered = fit_connection_limits(&mut [("syslog", &mut syslog), ("hec", &mut hec), ("api", &mut api)], 512);
        assert_eq!((syslog, hec, api), (227, 227, 56));
        assert!(syslog + hec + api <= 512);
        assert_eq!(lowered, vec![("syslog".into(), 1024), ("hec".into(), 1024), ("api".into(), 256)]);
        let lowered = fit_connection_limits(&mut [("syslog", &mut syslog), ("hec", &mut hec)], 100_000);
        assert!(lowered.is_empty(), "within the budget nothing changes");
        assert_eq!((syslog, hec), (227, 227));
    }

    #[test]
    fn the_soft_limit_is_raised_towards_the_hard_one() {
        let limit = raise_open_files_limit();
        assert!(limit.soft >= limit.was);
        assert!(limit.soft <= limit.hard);
        assert_eq!(limit.soft, limit.hard.min(WANTED_SOFT_LIMIT).max(limit.was));
        let again = raise_open_files_limit();
        assert_eq!(again.was, limit.soft, "the raise holds for the process");
        assert_eq!(OpenFilesLimit { was: 1024, soft: 1024, hard: 1024 }.connection_budget(), 512);
        assert_eq!(OpenFilesLimit { was: 400, soft: 400, hard: 400 }.connection_budget(), 200);
        assert_eq!(OpenFilesLimit { was: 1 << 20, soft: 1 << 20, hard: 1 << 20 }.connection_budget(), (1 << 20) - 512);
    }
}
