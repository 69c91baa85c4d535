//! SQLite event store (in progress).
