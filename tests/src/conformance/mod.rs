//! The corpus conformance run: parse rates over `../shared/corpus` (syslog, Wazuh).

pub mod syslog;
pub mod wazuh;
