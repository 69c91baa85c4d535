//! Events and dead letters into PostgreSQL: batches checked and encoded, loaded by binary COPY or INSERT, refused rows isolated.

use securewatch_schemas::Event;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder};

use super::config::LoadMethod;
use super::rows::{
    check_event, copy_header, copy_row, copy_trailer, rejected_event, storable_text, storable_time, EventRow,
    EVENT_COLUMN_LIST,
};
use super::sink::PostgresError;
use crate::sinks::{DeadLetter, WriteSummary};

/// Rows per multi-row INSERT into the staging table (12 bound values each; PostgreSQL allows 65535).
const INSERT_ROWS_PER_STATEMENT: usize = 2000;
/// Rows per multi-row INSERT of dead letters (7 bound values each).
const DEAD_LETTERS_PER_STATEMENT: usize = 1000;

/// A batch of checked events, with its binary COPY data when loading by COPY.
pub(super) struct Batch<'a> {
    rows: Vec<EventRow<'a>>,
    copy: Option<Vec<u8>>,
}

/// Checks `events` (those PostgreSQL would refuse become dead letters) and encodes the rest.
pub(super) fn prepare_batch(events: &[Event], load: LoadMethod) -> (Batch<'_>, Vec<DeadLetter>) {
    let mut rows = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    for event in events {
        match check_event(event) {
            Ok(row) => rows.push(row),
            Err(detail) => rejected.push(rejected_event(event, detail)),
        }
    }
    let copy = (load == LoadMethod::Copy).then(|| {
        let mut buffer = Vec::with_capacity(rows.len() * 512 + 32);
        copy_header(&mut buffer);
        for row in &rows {
            copy_row(&mut buffer, row);
        }
        copy_trailer(&mut buffer);
        buffer
    });
    (Batch { rows, copy }, rejected)
}

/// Stores one batch of checked events through the staging table, counting written and
/// duplicate rows. If the server refuses the batch, retries it row by row (each under a
/// savepoint) and dead-letters the rows it refuses.
pub(super) async fn store_event_batch(
    connection: &mut PgConnection,
    batch: &Batch<'_>,
    direct: &mut bool,
    summary: &mut WriteSummary,
    rejected: &mut Vec<DeadLetter>,
) -> Result<(), PostgresError> {
    let rows = batch.rows.as_slice();
    if rows.is_empty() {
        return Ok(());
    }
    if let (Some(copy), true) = (&batch.copy, *direct) {
        // Optimistic: one COPY into `events` itself, which a stored (time, id) aborts; then the
        // batch goes the staging way, and so does the rest of the write.
        sqlx::raw_sql("SAVEPOINT securewatch_direct").execute(&mut *connection).await?;
        match copy_rows(connection, "events", copy).await {
            Ok(()) => {
                sqlx::raw_sql("RELEASE SAVEPOINT securewatch_direct").execute(&mut *connection).await?;
                summary.written += rows.len() as u64;
                return Ok(());
            }
            Err(sqlx::Error::Database(error)) if refuses_data(&*error) => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT securewatch_direct; RELEASE SAVEPOINT securewatch_direct")
                    .execute(&mut *connection)
                    .await?;
                *direct = false;
            }
            Err(error) => return Err(error.into()),
        }
    }
    sqlx::raw_sql("SAVEPOINT securewatch_batch").execute(&mut *connection).await?;
    let attempt = async {
        match &batch.copy {
            Some(copy) => copy_rows(connection, "events_staging", copy).await?,
            None => insert_into_staging(connection, rows).await?,
        }
        let moved = sqlx::raw_sql(AssertSqlSafe(format!(
            "INSERT INTO events ({EVENT_COLUMN_LIST}) SELECT {EVENT_COLUMN_LIST} FROM events_staging \
             ON CONFLICT (time, id) DO NOTHING"
        )))
        .execute(&mut *connection)
        .await?;
        // Emptied for the next batch of the same transaction (cheaper than deleting the rows).
        sqlx::raw_sql("TRUNCATE events_staging").execute(&mut *connection).await?;
        Ok::<u64, sqlx::Error>(moved.rows_affected())
    }
    .await;
    match attempt {
        Ok(written) => {
            sqlx::raw_sql("RELEASE SAVEPOINT securewatch_batch").execute(&mut *connection).await?;
            summary.written += written;
            summary.duplicates += rows.len() as u64 - written;
            Ok(())
        }
        Err(sqlx::Error::Database(error)) if refuses_data(&*error) => {
            tracing::warn!(%error, rows = rows.len(), "PostgreSQL refused a batch of events; storing them one by one.");
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT securewatch_batch; RELEASE SAVEPOINT securewatch_batch")
                .execute(&mut *connection)
                .await?;
            for row in rows {
                sqlx::raw_sql("SAVEPOINT securewatch_row").execute(&mut *connection).await?;
                let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(INSERT_EVENTS_INTO_EVENTS);
                push_event_values(&mut builder, std::slice::from_ref(row));
                builder.push(" ON CONFLICT (time, id) DO NOTHING");
                match builder.build().execute(&mut *connection).await {
                    Ok(done) => {
                        sqlx::raw_sql("RELEASE SAVEPOINT securewatch_row").execute(&mut *connection).await?;
                        summary.written += done.rows_affected();
                        summary.duplicates += 1 - done.rows_affected();
                    }
                    Err(sqlx::Error::Database(error)) if refuses_data(&*error) => {
                        sqlx::raw_sql("ROLLBACK TO SAVEPOINT securewatch_row; RELEASE SAVEPOINT securewatch_row")
                            .execute(&mut *connection)
                            .await?;
                        rejected.push(rejected_event(row.event, format!("PostgreSQL refused the event: {error}")));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Whether a server error is about the data (SQLSTATE class 22, data exception, or 23,
/// integrity constraint violation): then the row, not the server, is at fault. Anything else
/// (connection, disk, permissions) fails the whole write, to be retried.
fn refuses_data(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.code().is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}
/// Binary COPY of the rows in `buffer` (a whole COPY stream) into `table` (a fixed name).
async fn copy_rows(connection: &mut PgConnection, table: &str, buffer: &[u8]) -> Result<(), sqlx::Error> {
    let mut copy = connection
        .copy_in_raw(&format!("COPY {table} ({EVENT_COLUMN_LIST}) FROM STDIN WITH (FORMAT binary)"))
        .await?;
    // Sent in 1 MiB pieces: each becomes one CopyData message.
    for piece in buffer.chunks(1 << 20) {
        if let Err(error) = copy.send(piece).await {
            let _ = copy.abort("sending failed").await;
            return Err(error);
        }
    }
    copy.finish().await?;
    Ok(())
}

const INSERT_EVENTS_INTO_STAGING: &str = "INSERT INTO events_staging (time, id, received, source_kind, source_name, \
     peer, host, severity, category, message, fields, raw, tenant) ";
const INSERT_EVENTS_INTO_EVENTS: &str = "INSERT INTO events (time, id, received, source_kind, source_name, \
     peer, host, severity, category, message, fields, raw, tenant) ";

fn push_event_values(builder: &mut QueryBuilder<Postgres>, rows: &[EventRow<'_>]) {
    builder.push_values(rows, |mut values, row| {
        let event = row.event;
        values
            .push_bind(event.time)
            .push_bind(event.id.to_bytes().to_vec())
            .push_bind(event.received)
            .push_bind(event.source.kind.as_str())
            .push_bind(event.source.name.clone())
            .push_bind(event.source.peer.clone())
            .push_bind(event.host.clone())
            .push_bind(i16::from(event.severity.code()))
            .push_bind(event.category.clone())
            .push_bind(event.message.clone())
            .push_bind(row.fields.clone())
            .push_unseparated("::jsonb")
            .push_bind(event.raw.clone())
            .push_bind(event.tenant.to_string());
    });
}

async fn insert_into_staging(connection: &mut PgConnection, rows: &[EventRow<'_>]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(INSERT_ROWS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(INSERT_EVENTS_INTO_STAGING);
        push_event_values(&mut builder, chunk);
        builder.build().execute(&mut *connection).await?;
    }
    Ok(())
}

/// Inserts dead letters (text made storable: NUL bytes replaced; the body keeps every byte).
pub(super) async fn insert_dead_letters<'a>(
    connection: &mut PgConnection,
    letters: impl Iterator<Item = &'a DeadLetter>,
) -> Result<u64, PostgresError> {
    let letters: Vec<&DeadLetter> = letters.collect();
    for chunk in letters.chunks(DEAD_LETTERS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO dead_letters (received, source_kind, source_name, peer, reason, detail, body, tenant) ",
        );
        builder.push_values(chunk, |mut values, letter| {
            values
                .push_bind(storable_time(letter.record.received))
                .push_bind(letter.record.kind.as_str())
                .push_bind(storable_text(&letter.record.source_name).into_owned())
                .push_bind(letter.record.peer.as_deref().map(|peer| storable_text(peer).into_owned()))
                .push_bind(letter.reason)
                .push_bind(storable_text(&letter.detail).into_owned())
                .push_bind(letter.record.body.clone())
                .push_bind(letter.record.tenant.to_string());
        });
        builder.build().execute(&mut *connection).await?;
    }
    Ok(letters.len() as u64)
}
