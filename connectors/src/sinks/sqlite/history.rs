//! History reads of the embedded store for backtests: events of a range in `(time, id)` order.

use securewatch_schemas::{Event, TenantScope};
use sqlx::{QueryBuilder, Sqlite};

use super::query::{row_to_event, EVENT_COLUMNS};
use super::store::{SqliteStore, StoreError};
use crate::sinks::read::HistoryQuery;
use crate::sinks::rows::tenant_condition;

impl SqliteStore {
    /// A chunk of `scope`'s events of `[from, to)` after `query.after`, oldest first (the
    /// `(time_us, id)` index answers it without sorting).
    pub async fn history(&self, query: &HistoryQuery, scope: &TenantScope) -> Result<Vec<Event>, StoreError> {
        let (after_time, after_id) = query.after_key();
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE {}", tenant_condition("tenant", scope)));
        builder.push(" AND time_us < ").push_bind(query.to.timestamp_micros());
        builder.push(" AND (time_us > ").push_bind(after_time);
        builder.push(" OR (time_us = ").push_bind(after_time).push(" AND id > ").push_bind(after_id).push("))");
        builder.push(" ORDER BY time_us, id LIMIT ").push_bind(i64::from(query.limit));
        let rows = builder.build().fetch_all(self.pool()).await?;
        rows.iter().map(row_to_event).collect()
    }
}
