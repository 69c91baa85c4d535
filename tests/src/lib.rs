//! Support for SecureWatch's end-to-end tests and the corpus conformance run.
//!
//! The end-to-end tests (`tests/e2e/`) start the real `securewatch` binary on free loopback
//! ports in a temporary data directory and drive it with real clients (`curl`, `logger`).

pub mod conformance;
pub mod instance;
pub mod postgres;
pub mod store;
pub mod tls;
