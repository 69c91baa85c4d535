//! Online copies of the embedded store: a consistent snapshot taken beside a running writer, and its check.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, SqliteConnection};

use super::store::StoreError;

/// What a snapshot holds, counted in the copy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounts {
    /// Stored events.
    pub events: u64,
    /// Stored alerts.
    pub alerts: u64,
    /// Dead letters.
    pub dead_letters: u64,
}

/// Writes a consistent copy of the store at `source` to `destination` (which must not exist)
/// with `VACUUM INTO`, on a read-only connection of its own: the copy is the store as of one
/// committed transaction (WAL included) while a running writer goes on. Returns what the copy
/// holds, after SQLite's integrity check of the copy.
pub async fn snapshot_store(source: &Path, destination: &Path) -> Result<StoreCounts, StoreError> {
    let mut connection = connect(source, false).await?;
    sqlx::query("VACUUM INTO ?").bind(destination.to_string_lossy().into_owned()).execute(&mut connection).await?;
    drop(connection);
    check_store(destination).await
}

/// Opens the store file at `path` read-only, runs SQLite's integrity check and counts what it
/// holds; a damaged file is [`StoreError::Damaged`].
pub async fn check_store(path: &Path) -> Result<StoreCounts, StoreError> {
    let mut connection = connect(path, true).await?;
    let damaged = |problems: String| StoreError::Damaged { path: path.display().to_string(), problems };
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut connection)
        .await
        .map_err(|error| damaged(error.to_string()))?;
    if problems != ["ok"] {
        return Err(damaged(problems.join("; ")));
    }
    let (events, alerts, dead_letters): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM alerts), (SELECT count(*) FROM dead_letters)",
    )
    .fetch_one(&mut connection)
    .await?;
    Ok(StoreCounts { events: events as u64, alerts: alerts as u64, dead_letters: dead_letters as u64 })
}

/// A read-only connection to an existing store file; `immutable` for a copy nobody writes.
async fn connect(path: &Path, immutable: bool) -> Result<SqliteConnection, StoreError> {
    let open_error = |source| StoreError::Open { path: path.display().to_string(), source };
    if !path.is_file() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        return Err(open_error(sqlx::Error::Io(missing)));
    }
    let mut options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(open_error)?
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    options = if immutable {
        options.immutable(true)
    } else {
        // The running store is in WAL mode; a reader of it must be too (it only reads the WAL).
        options.journal_mode(SqliteJournalMode::Wal)
    };
    options.connect().await.map_err(open_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::sqlite::{SqliteConfig, SqliteStore};

    #[tokio::test]
    async fn a_snapshot_taken_while_the_store_is_open_holds_its_committed_rows() {
        let directory = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(directory.path(), &SqliteConfig::default()).await.unwrap();
        sqlx::query("INSERT INTO dead_letters (received_us, source_kind, source_name, reason, detail, body) \
             VALUES (1, 'hec', 'hec', 'test', 'a test', x'00')")
            .execute(&store.writer)
            .await
            .unwrap();
        let copy = directory.path().join("copy.db");
        let counts = snapshot_store(&directory.path().join("securewatch.db"), &copy).await.unwrap();
        assert_eq!(counts, StoreCounts { events: 0, alerts: 0, dead_letters: 1 });
        assert_eq!(check_store(&copy).await.unwrap(), counts);
        store.close().await;
    }

    #[tokio::test]
    async fn a_damaged_or_missing_file_is_refused_with_its_path() {
        let directory = tempfile::tempdir().unwrap();
        let missing = check_store(&directory.path().join("none.db")).await.unwrap_err().to_string();
        assert!(missing.contains("none.db") && missing.contains("no such file"), "{missing}");
        let garbage = directory.path().join("garbage.db");
        std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
        let damaged = check_store(&garbage).await.unwrap_err().to_string();
        assert!(damaged.contains("garbage.db") && damaged.contains("damaged"), "{damaged}");
    }
}
