//! History reads of the embedded store for backtests: events of a range in `(time, id)` order.

use securewatch_schemas::{Event, TenantScope};
use sqlx::{QueryBuilder, Sqlite};

use super::query::{row_to_event, EVENT_COLUMNS};
use super::store::{SqliteStore, StoreError};
use crate::sinks::read::HistoryQuery;
use crate::sinks::rows::tenant_condition;

/// Pushes the chunk's query after `builder`'s start. `time_us >= after` repeats what the
/// keyset condition implies: without it SQLite splits the `OR` into two index searches and
/// sorts everything up to the range's end in a temporary B-tree for every chunk, so a
/// backtest read its range quadratically; with it the `(time_us, id)` index is walked in order
/// and the read stops at the limit.
fn push_history(builder: &mut QueryBuilder<Sqlite>, query: &HistoryQuery, scope: &TenantScope) {
    let (after_time, after_id) = query.after_key();
    builder.push(format!("SELECT {EVENT_COLUMNS} FROM events WHERE {}", tenant_condition("tenant", scope)));
    builder.push(" AND time_us >= ").push_bind(after_time);
    builder.push(" AND time_us < ").push_bind(query.to.timestamp_micros());
    builder.push(" AND (time_us > ").push_bind(after_time);
    builder.push(" OR (time_us = ").push_bind(after_time).push(" AND id > ").push_bind(after_id).push("))");
    builder.push(" ORDER BY time_us, id LIMIT ").push_bind(i64::from(query.limit));
}

impl SqliteStore {
    /// A chunk of `scope`'s events of `[from, to)` after `query.after`, oldest first (the
    /// `(time_us, id)` index answers it without sorting).
    pub async fn history(&self, query: &HistoryQuery, scope: &TenantScope) -> Result<Vec<Event>, StoreError> {
        let mut builder = QueryBuilder::new("");
        push_history(&mut builder, query, scope);
        let rows = builder.build().fetch_all(self.pool()).await?;
        rows.iter().map(row_to_event).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::sqlite::SqliteConfig;
    use sqlx::Row;

    #[tokio::test]
    async fn a_history_chunk_walks_the_time_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let from = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let query = HistoryQuery { from, to: from + chrono::Duration::hours(1), after: None, limit: 5000 };
        for scope in [TenantScope::All, TenantScope::Only(vec!["acme".into()])] {
            let mut builder = QueryBuilder::new("EXPLAIN QUERY PLAN ");
            push_history(&mut builder, &query, &scope);
            let plan: Vec<String> = builder
                .build()
                .fetch_all(store.pool())
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<String, _>("detail"))
                .collect();
            assert_eq!(plan.len(), 1, "one search, no OR split or sort: {plan:?}");
            assert!(plan[0].contains("USING INDEX events_time_id (time_us>? AND time_us<?)"), "{plan:?}");
        }
    }
}
