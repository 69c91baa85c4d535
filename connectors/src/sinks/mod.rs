//! Stores that events are written to.

pub mod opensearch;
pub mod postgres;
pub mod progress;
pub mod sqlite;
