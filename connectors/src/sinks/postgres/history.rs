//! History reads of PostgreSQL for backtests: events of a range in `(time, id)` order.

use securewatch_schemas::{Event, TenantScope};
use sqlx::{Postgres, QueryBuilder};

use super::query::row_to_event;
use super::sink::{PostgresError, PostgresSink};
use crate::sinks::read::HistoryQuery;
use crate::sinks::rows::tenant_condition;

impl PostgresSink {
    /// A chunk of `scope`'s events of `[from, to)` after `query.after`, oldest first (the
    /// primary key `(time, id)` answers it; partitions outside the range are pruned).
    pub async fn history(&self, query: &HistoryQuery, scope: &TenantScope) -> Result<Vec<Event>, PostgresError> {
        let (after_time, after_id) = query.after_key();
        let after = chrono::DateTime::from_timestamp_micros(after_time).unwrap_or(query.from);
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT id, time, received, source_kind, source_name, peer, host, severity, category, message, \
             fields::text AS fields, raw, tenant FROM events WHERE {}",
            tenant_condition("tenant", scope)
        ));
        builder.push(" AND time >= ").push_bind(after);
        builder.push(" AND time < ").push_bind(query.to);
        builder.push(" AND (time, id) > (").push_bind(after).push(", ").push_bind(after_id).push(")");
        builder.push(" ORDER BY time, id LIMIT ").push_bind(i64::from(query.limit));
        let rows = builder.build().fetch_all(self.pool()).await?;
        rows.iter().map(row_to_event).collect()
    }
}
