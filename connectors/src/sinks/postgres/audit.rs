//! The audit log in PostgreSQL: the same entries as the embedded store, for reporting next to the events.

use super::sink::{PostgresError, PostgresSink};
use super::rows::{storable_text, storable_time};
use crate::sinks::audit::AuditEntry;

impl PostgresSink {
    /// Appends one audit entry.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), PostgresError> {
        sqlx::query(
            "INSERT INTO audit_log (time, identity, tenant, action, resource, outcome, peer, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(storable_time(entry.time))
        .bind(storable_text(&entry.identity).into_owned())
        .bind(storable_text(&entry.tenant).into_owned())
        .bind(storable_text(&entry.action).into_owned())
        .bind(storable_text(&entry.resource).into_owned())
        .bind(entry.outcome.as_str())
        .bind(entry.peer.as_deref().map(|peer| storable_text(peer).into_owned()))
        .bind(storable_text(&entry.detail).into_owned())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
