//! The embedded event store: SQLite through sqlx in the data directory.

mod config;
mod query;
mod store;

pub use config::{SqliteConfig, Synchronous};
pub use query::{EventQuery, StoredDeadLetter, StoredEvent};
pub use store::{DeadLetter, SqliteStore, StoreError, WriteSummary};
