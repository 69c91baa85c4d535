//! Ingestion sources: HEC, syslog and the Wazuh alerts tailer.

pub mod hec;
pub mod syslog;
pub mod wazuh;
