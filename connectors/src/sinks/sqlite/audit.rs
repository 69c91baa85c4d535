//! The audit log in the embedded store: appends through the writer connection, reads filtered by tenant.

use securewatch_schemas::TenantScope;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::query::micros_to_time;
use super::store::{SqliteStore, StoreError};
use crate::sinks::audit::{tenant_filter, AuditEntry, AuditQuery, MAX_AUDIT_ROWS};

impl SqliteStore {
    /// Appends one audit entry.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (time_us, identity, tenant, action, resource, outcome, peer, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.time.timestamp_micros())
        .bind(&entry.identity)
        .bind(&entry.tenant)
        .bind(&entry.action)
        .bind(&entry.resource)
        .bind(entry.outcome.as_str())
        .bind(entry.peer.as_deref())
        .bind(&entry.detail)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Audit entries of the tenants of `scope`, newest first.
    pub async fn audit(&self, scope: &TenantScope, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT time_us, identity, tenant, action, resource, outcome, peer, detail FROM audit_log WHERE 1 = 1",
        );
        if let Some(tenants) = tenant_filter(scope) {
            if tenants.is_empty() {
                return Ok(Vec::new());
            }
            sql.push(" AND tenant IN (");
            let mut separated = sql.separated(", ");
            for tenant in tenants {
                separated.push_bind(tenant.clone());
            }
            sql.push(")");
        }
        if let Some(outcome) = query.outcome {
            sql.push(" AND outcome = ").push_bind(outcome.as_str());
        }
        if let Some(identity) = &query.identity {
            sql.push(" AND identity = ").push_bind(identity.clone());
        }
        sql.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(query.limit.min(MAX_AUDIT_ROWS)));
        let rows = sql.build().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                let outcome: String = row.try_get("outcome")?;
                Ok(AuditEntry {
                    time: micros_to_time(row.try_get("time_us")?),
                    identity: row.try_get("identity")?,
                    tenant: row.try_get("tenant")?,
                    action: row.try_get("action")?,
                    resource: row.try_get("resource")?,
                    outcome: AuditEntry::outcome_from(&outcome),
                    peer: row.try_get("peer")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::audit::AuditOutcome;
    use crate::sinks::sqlite::SqliteConfig;

    fn entry(identity: &str, tenant: &str, outcome: AuditOutcome) -> AuditEntry {
        AuditEntry {
            time: chrono::Utc::now(),
            identity: identity.into(),
            tenant: tenant.into(),
            action: "rules:write".into(),
            resource: "POST /api/v1/rules/reload".into(),
            outcome,
            peer: Some("127.0.0.1:5000".into()),
            detail: String::new(),
        }
    }

    #[tokio::test]
    async fn audit_entries_are_appended_read_by_tenant_and_never_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        store.append_audit(&entry("admin", "*", AuditOutcome::Ok)).await.unwrap();
        store.append_audit(&entry("acme-bot", "acme", AuditOutcome::Refused)).await.unwrap();
        store.append_audit(&entry("globex-bot", "globex", AuditOutcome::Ok)).await.unwrap();
        let all = |limit| AuditQuery { limit, ..AuditQuery::default() };

        let every = store.audit(&TenantScope::All, &all(10)).await.unwrap();
        let names: Vec<&str> = every.iter().map(|entry| entry.identity.as_str()).collect();
        assert_eq!(names, ["globex-bot", "acme-bot", "admin"], "newest first");
        assert_eq!(every[1].outcome, AuditOutcome::Refused);
        assert_eq!(every[1].peer.as_deref(), Some("127.0.0.1:5000"));

        let acme = store.audit(&TenantScope::Only(vec!["acme".into()]), &all(10)).await.unwrap();
        assert_eq!(acme.iter().map(|entry| entry.identity.as_str()).collect::<Vec<_>>(), ["acme-bot"]);
        assert!(store.audit(&TenantScope::Only(Vec::new()), &all(10)).await.unwrap().is_empty());
        let refused = AuditQuery { limit: 10, outcome: Some(AuditOutcome::Ok), identity: Some("admin".into()) };
        assert_eq!(store.audit(&TenantScope::All, &refused).await.unwrap().len(), 1);
        assert_eq!(store.audit(&TenantScope::All, &all(1)).await.unwrap().len(), 1);

        for statement in ["UPDATE audit_log SET outcome = 'ok'", "DELETE FROM audit_log"] {
            let error = sqlx::query(statement).execute(&store.writer).await.unwrap_err().to_string();
            assert!(error.contains("append-only"), "{statement}: {error}");
        }
        assert_eq!(store.audit(&TenantScope::All, &all(10)).await.unwrap().len(), 3);
        store.close().await;
    }
}
