//! The corpus conformance run: parse rates over `../shared/corpus` (syslog, Wazuh), Sigma rule
//! loading and the SigmaHQ Windows regression samples.

pub mod sigma;
pub mod syslog;
pub mod wazuh;
pub mod windows;
