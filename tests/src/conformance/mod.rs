//! The corpus conformance run: parse rates over `../shared/corpus` (syslog, Wazuh), Sigma rule
//! loading, the correlation examples run through the engine, and the SigmaHQ Windows
//! regression samples.

pub mod correlations;
pub mod sigma;
pub mod syslog;
pub mod wazuh;
pub mod windows;
