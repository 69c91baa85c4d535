//! Stores that events are written to.

pub mod sqlite;
