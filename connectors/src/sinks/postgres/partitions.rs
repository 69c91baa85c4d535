//! Plain PostgreSQL's daily partitions of the events table: created ahead, a late day's events moved out of the default partition.

use chrono::{NaiveDate, Utc};
use sqlx::AssertSqlSafe;

use super::sink::{Flavour, PostgresError, PostgresSink};

impl PostgresSink {

    /// Plain flavour: creates the daily partitions from `partitions_behind_days` before today to
    /// `partitions_ahead_days` after it. No-op on TimescaleDB (chunks are created by it).
    pub async fn maintain_partitions(&self) -> Result<(), PostgresError> {
        if self.flavour != Flavour::Plain {
            return Ok(());
        }
        let today = Utc::now().date_naive();
        let from = today - chrono::Days::new(u64::from(self.config.partitions_behind_days));
        let to = today + chrono::Days::new(u64::from(self.config.partitions_ahead_days));
        self.ensure_partitions(from, to).await?;
        *self.partitions_day.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(today);
        Ok(())
    }

    /// Plain flavour: makes sure the daily partitions of `from..=to` (UTC days) exist. Events of
    /// a day without a partition sit in `events_default`; creating the day's partition moves
    /// them into it. Returns the partitions created.
    pub async fn ensure_partitions(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<String>, PostgresError> {
        let mut created = Vec::new();
        if self.flavour != Flavour::Plain {
            return Ok(created);
        }
        for day in from.iter_days().take_while(|day| *day <= to) {
            let name = partition_name(day);
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&name)
                .fetch_one(&self.pool)
                .await?;
            if exists {
                continue;
            }
            let next = day + chrono::Days::new(1);
            let mut transaction = self.pool.begin().await?;
            // One partition maker at a time across sinks sharing the database.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('securewatch_partitions'))").execute(&mut *transaction).await?;
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&name)
                .fetch_one(&mut *transaction)
                .await?;
            if exists {
                continue;
            }
            // Names and bounds come from dates only: no outside text reaches the SQL.
            let (lower, upper) = (format!("{day} 00:00:00+00"), format!("{next} 00:00:00+00"));
            sqlx::raw_sql(AssertSqlSafe(format!(
                "LOCK TABLE events_default IN ACCESS EXCLUSIVE MODE;
                 CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
                 WITH moved AS (DELETE FROM events_default WHERE time >= '{lower}' AND time < '{upper}' RETURNING *)
                 INSERT INTO {name} SELECT * FROM moved;
                 ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ('{lower}') TO ('{upper}');"
            )))
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
            created.push(name);
        }
        Ok(created)
    }
}

/// `events_pYYYYMMDD`.
pub(super) fn partition_name(day: NaiveDate) -> String {
    format!("events_p{}", day.format("%Y%m%d"))
}
