//! End-to-end tests: the real `securewatch` binary driven by `curl` and `logger`.
//!
//! Each test starts its own instance on free loopback ports in a temporary data directory.

mod abuse;
mod access;
mod backtest;
mod backup;
mod console;
mod dataflow;
mod detection;
mod enrichment;
mod first_hour;
mod fleet;
mod hec;
mod hec_acks;
mod journal;
mod lifecycle;
mod readme;
mod rules;
mod search;
mod search_jobs;
mod sinks;
mod syslog;
mod tenants;
mod tls;
mod wazuh;
