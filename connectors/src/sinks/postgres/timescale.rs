//! TimescaleDB start-up work: refresh policies of the continuous aggregates, compression and
//! retention of the events hypertable, and a way to run their jobs on demand.

use sqlx::AssertSqlSafe;

use super::sink::{Flavour, PostgresError, PostgresSink};

/// Refresh policy of each continuous aggregate: (name, start offset, end offset, schedule).
/// The one-minute aggregates re-read the last 3 hours every minute; the hourly ones, built on
/// them, the last 3 days every 30 minutes. Newer buckets are read live (real-time aggregation).
const REFRESH_POLICIES: [(&str, &str, &str, &str); 4] = [
    ("rollup_1m", "3 hours", "1 minute", "1 minute"),
    ("rollup_category_1m", "3 hours", "1 minute", "1 minute"),
    ("rollup_1h", "3 days", "1 hour", "30 minutes"),
    ("rollup_category_1h", "3 days", "1 hour", "30 minutes"),
];

/// A TimescaleDB background job of this schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimescaleJob {
    /// TimescaleDB's job id.
    pub id: i32,
    /// e.g. `policy_refresh_continuous_aggregate`, `policy_compression`, `policy_retention`.
    pub procedure: String,
    /// The hypertable or continuous aggregate the job works on.
    pub target: String,
}

impl PostgresSink {
    /// Adds the refresh policies, and sets compression and retention from the configuration
    /// (removing them where the configuration has none).
    pub(super) async fn apply_timescale_policies(&self) -> Result<(), PostgresError> {
        let policy_error = |what: &str, error: sqlx::Error| PostgresError::Timescale(format!("{what}: {error}"));
        for (view, start, end, every) in REFRESH_POLICIES {
            // Only the constants above reach the SQL.
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SELECT add_continuous_aggregate_policy('{view}', start_offset => INTERVAL '{start}', \
                 end_offset => INTERVAL '{end}', schedule_interval => INTERVAL '{every}', if_not_exists => true)"
            )))
            .execute(&self.pool)
            .await
            .map_err(|error| policy_error(&format!("refresh policy of {view}"), error))?;
        }
        sqlx::raw_sql("SELECT remove_compression_policy('events', if_exists => true)")
            .execute(&self.pool)
            .await
            .map_err(|error| policy_error("removing the compression policy", error))?;
        if let Some(days) = self.config.compress_after_days {
            let enabled: Option<bool> = sqlx::query_scalar(
                "SELECT compression_enabled FROM timescaledb_information.hypertables \
                 WHERE hypertable_name = 'events' AND hypertable_schema = current_schema()",
            )
            .fetch_optional(&self.pool)
            .await?;
            if enabled != Some(true) {
                sqlx::raw_sql(
                    "ALTER TABLE events SET (timescaledb.compress, timescaledb.compress_segmentby = 'source_kind', \
                     timescaledb.compress_orderby = 'time DESC, id')",
                )
                .execute(&self.pool)
                .await
                .map_err(|error| policy_error("enabling compression", error))?;
            }
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SELECT add_compression_policy('events', compress_after => INTERVAL '{days} days')"
            )))
            .execute(&self.pool)
            .await
            .map_err(|error| policy_error("compression policy", error))?;
        }
        sqlx::raw_sql("SELECT remove_retention_policy('events', if_exists => true)")
            .execute(&self.pool)
            .await
            .map_err(|error| policy_error("removing the retention policy", error))?;
        if let Some(days) = self.config.retention_days {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SELECT add_retention_policy('events', drop_after => INTERVAL '{days} days')"
            )))
            .execute(&self.pool)
            .await
            .map_err(|error| policy_error("retention policy", error))?;
        }
        Ok(())
    }

    /// The TimescaleDB jobs on this schema's events table and aggregates (empty on plain PostgreSQL).
    pub async fn timescale_jobs(&self) -> Result<Vec<TimescaleJob>, PostgresError> {
        if self.flavour != Flavour::Timescale {
            return Ok(Vec::new());
        }
        let rows: Vec<(i32, String, String)> = sqlx::query_as(
            "SELECT job_id, proc_name::text, hypertable_name::text FROM timescaledb_information.jobs \
             WHERE hypertable_schema = current_schema() ORDER BY job_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, procedure, target)| TimescaleJob { id, procedure, target }).collect())
    }

    /// Runs a TimescaleDB job now (`CALL run_job`), e.g. where background workers do not run.
    pub async fn run_job(&self, id: i32) -> Result<(), PostgresError> {
        sqlx::raw_sql(AssertSqlSafe(format!("CALL run_job({id})"))).execute(&self.pool).await?;
        Ok(())
    }
}
