//! `[jobs]`: how many jobs run at once (per tenant and in all), how many rows one keeps, how
//! long an unread one lives and how much space all results take; checked as the file is read,
//! so a bad value is refused with its file and line.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::JobLimits;

/// Most rows a job may be allowed to keep (`row_cap`).
const MAX_ROW_CAP: u64 = 100_000_000;
/// Least results space (`results_max_bytes`): one MiB.
const MIN_RESULTS_BYTES: u64 = 1 << 20;

/// `[jobs]`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "JobsSettings", into = "JobsSettings")]
pub struct JobsConfig(JobsSettings);

/// The keys of `[jobs]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSettings {
    /// Jobs running at once for one tenant (the set of tenants a caller reads); the rest queue.
    pub concurrency_per_tenant: usize,
    /// Jobs running at once in all. Each holds one of the store's read turns while it runs;
    /// the default (2) leaves dashboards and event reads one of the three.
    pub concurrency: usize,
    /// Most result rows a job keeps; then it stops, `truncated`.
    pub row_cap: u64,
    /// Seconds a job lives unread when its submission names no `keep_alive`.
    pub keep_alive_secs: u64,
    /// Longest `keep_alive` a submission may ask for, in seconds.
    pub max_keep_alive_secs: u64,
    /// Bytes all jobs' results may take in `<data_dir>/jobs`; past it new jobs are refused
    /// until some expire or are deleted.
    pub results_max_bytes: u64,
}

impl Default for JobsSettings {
    fn default() -> Self {
        let limits = JobLimits::default();
        JobsSettings {
            concurrency_per_tenant: limits.per_tenant,
            concurrency: limits.global,
            row_cap: limits.row_cap,
            keep_alive_secs: limits.default_keep_alive.as_secs(),
            max_keep_alive_secs: limits.max_keep_alive.as_secs(),
            results_max_bytes: limits.total_bytes,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig(JobsSettings::default())
    }
}

impl TryFrom<JobsSettings> for JobsConfig {
    type Error = String;

    fn try_from(settings: JobsSettings) -> Result<Self, String> {
        let JobsSettings { concurrency_per_tenant, concurrency, row_cap, keep_alive_secs, max_keep_alive_secs, results_max_bytes } = settings;
        if concurrency == 0 || concurrency_per_tenant == 0 {
            return Err("[jobs] concurrency and concurrency_per_tenant must be at least 1".into());
        }
        if concurrency_per_tenant > concurrency {
            return Err(format!("[jobs] concurrency_per_tenant = {concurrency_per_tenant} is above concurrency = {concurrency}, the limit in all"));
        }
        if row_cap == 0 || row_cap > MAX_ROW_CAP {
            return Err(format!("[jobs] row_cap = {row_cap}: use 1 to {MAX_ROW_CAP}"));
        }
        if keep_alive_secs == 0 || keep_alive_secs > max_keep_alive_secs {
            return Err(format!("[jobs] keep_alive_secs = {keep_alive_secs}: use 1 to max_keep_alive_secs ({max_keep_alive_secs})"));
        }
        if results_max_bytes < MIN_RESULTS_BYTES {
            return Err(format!("[jobs] results_max_bytes = {results_max_bytes}: use at least {MIN_RESULTS_BYTES} (1 MiB)"));
        }
        Ok(JobsConfig(settings))
    }
}

impl From<JobsConfig> for JobsSettings {
    fn from(config: JobsConfig) -> Self {
        config.0
    }
}

impl JobsConfig {
    /// The runner's limits: these settings over the built-in ones; one job keeps at most the
    /// whole results space.
    pub fn limits(&self) -> JobLimits {
        let defaults = JobLimits::default();
        let settings = &self.0;
        JobLimits {
            per_tenant: settings.concurrency_per_tenant,
            global: settings.concurrency,
            row_cap: settings.row_cap,
            byte_cap: defaults.byte_cap.min(settings.results_max_bytes),
            total_bytes: settings.results_max_bytes,
            default_keep_alive: Duration::from_secs(settings.keep_alive_secs),
            max_keep_alive: Duration::from_secs(settings.max_keep_alive_secs),
            ..defaults
        }
    }
}
