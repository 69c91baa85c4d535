//! Small conversions between Rust values and PostgreSQL columns, shared by the writes and reads.

use securewatch_schemas::{EventId, Severity};

use super::sink::PostgresError;

/// Milliseconds as PostgreSQL's bigint (saturating; no real time comes near the limit).
pub(super) fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub(super) fn decode_error(message: String) -> PostgresError {
    PostgresError::Sql(sqlx::Error::Decode(message.into()))
}

pub(super) fn none_if_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

pub(super) fn severity_of(code: i64) -> Result<Severity, PostgresError> {
    u8::try_from(code)
        .ok()
        .filter(|code| *code <= 7)
        .map(Severity::from_code)
        .ok_or_else(|| decode_error(format!("severity code {code} out of range")))
}

pub(super) fn bucket_of(ms: i64) -> Result<u64, PostgresError> {
    u64::try_from(ms).map_err(|_| decode_error(format!("negative rollup bucket {ms}")))
}

pub(super) fn id_from_bytes(bytes: Vec<u8>) -> Result<EventId, PostgresError> {
    <[u8; 16]>::try_from(bytes.as_slice()).map(EventId::from_bytes).map_err(|_| decode_error("id is not 16 bytes".into()))
}
