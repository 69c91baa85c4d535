//! The store-independent half of SQLite's and PostgreSQL's rows: values encoded for and decoded from either dialect.

use std::collections::BTreeMap;

use securewatch_schemas::{EventId, RollupChange, RollupKey, Severity, SourceKind};

use super::progress::SourceProgress;

/// Milliseconds as a SQL bigint (saturating; no real time comes near the limit).
pub(crate) fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A stored '' back to "none" (the rollup tables store a missing host or category as '').
pub(crate) fn none_if_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A decoding failure, as sqlx reports one.
fn decode_error(message: String) -> sqlx::Error {
    sqlx::Error::Decode(message.into())
}

/// A stored severity code (0 to 7).
pub(crate) fn severity_of(code: i64) -> Result<Severity, sqlx::Error> {
    u8::try_from(code)
        .ok()
        .filter(|code| *code <= 7)
        .map(Severity::from_code)
        .ok_or_else(|| decode_error(format!("severity code {code} out of range")))
}

/// A stored rollup bucket start (ms, never negative).
pub(crate) fn bucket_of(ms: i64) -> Result<u64, sqlx::Error> {
    u64::try_from(ms).map_err(|_| decode_error(format!("negative rollup bucket {ms}")))
}

/// A stored 16-byte event or alert id.
pub(crate) fn id_from_bytes(bytes: Vec<u8>) -> Result<EventId, sqlx::Error> {
    <[u8; 16]>::try_from(bytes.as_slice()).map(EventId::from_bytes).map_err(|_| decode_error("id is not 16 bytes".into()))
}

/// Each changed rollup row's count after `changes` (the last change of a row wins).
pub(crate) fn latest_counts(changes: &[RollupChange]) -> BTreeMap<(&RollupKey, u64), i64> {
    changes.iter().map(|change| ((&change.key, change.bucket_start_ms), change.count)).collect()
}

/// A stored source kind (`hec`, `syslog`, …).
pub(crate) fn source_kind_of(kind: &str) -> Result<SourceKind, sqlx::Error> {
    SourceKind::parse(kind).ok_or_else(|| decode_error(format!("unknown source kind {kind:?}")))
}

/// Stored source positions, read as `(source, partition, position, epoch)` rows.
pub(crate) fn progress_of(rows: Vec<(String, String, String, i64)>) -> Vec<SourceProgress> {
    rows.into_iter()
        .map(|(source, partition, position, epoch)| SourceProgress {
            source,
            partition,
            position,
            epoch: u64::try_from(epoch).unwrap_or(0),
        })
        .collect()
}
