//! The hour path of a rollup summary: whole hours of the range from hour counts, the minutes
//! at its ends from minute counts, as one derived table the summary's level reads.

use chrono::{DateTime, Utc};
use securewatch_schemas::query::Column;

use super::expr::{Param, Params, RollupSource};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// Where a store keeps counts per hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HourCounts {
    /// `dashboard_1m` / `dashboard_1h` (SQLite and plain PostgreSQL): one row per value of one
    /// dimension, so they answer summaries by at most one rolled-up column.
    Dimension(&'static str),
    /// TimescaleDB's continuous aggregates `rollup_1m` / `rollup_1h` (and the category pair):
    /// every rolled-up column.
    Timescale,
}

impl HourCounts {
    /// The counts of `source` that answer a summary by `columns` (the rolled-up columns it
    /// reads besides the time and the tenant), when there are any.
    pub(super) fn for_columns(source: RollupSource, columns: &[Column]) -> Option<HourCounts> {
        if matches!(source, RollupSource::TimescaleSource | RollupSource::TimescaleCategory) {
            return Some(HourCounts::Timescale);
        }
        let mut dimensions = columns.iter().filter(|column| !matches!(column, Column::Time | Column::Tenant)).map(|column| match column {
            Column::Host => Some("host"),
            Column::Severity => Some("severity"),
            Column::SourceKind => Some("source"),
            Column::Category => Some("category"),
            _ => None,
        });
        let first = dimensions.next();
        if dimensions.any(|other| other != first.flatten()) {
            return None;
        }
        match first {
            None => Some(HourCounts::Dimension("source")),
            Some(dimension) => dimension.map(HourCounts::Dimension),
        }
    }
}

/// The ranges `[from, to)` (ms) to read from minute counts (`false`) and hour counts (`true`):
/// the minute buckets starting in `[from_ms, to_ms)`, whole hours from the hours.
fn segments(from_ms: i64, to_ms: i64) -> Vec<(bool, i64, i64)> {
    let first_whole = from_ms.div_euclid(HOUR_MS) * HOUR_MS + if from_ms.rem_euclid(HOUR_MS) == 0 { 0 } else { HOUR_MS };
    let last_whole = to_ms.div_euclid(HOUR_MS) * HOUR_MS;
    if first_whole >= last_whole {
        return vec![(false, from_ms, to_ms)];
    }
    let mut segments = vec![(true, first_whole, last_whole)];
    if from_ms < first_whole {
        segments.push((false, from_ms, first_whole));
    }
    if last_whole < to_ms {
        segments.push((false, last_whole, to_ms));
    }
    segments
}

/// The derived table over the minute buckets the range `[from, to)` touches (as the minute
/// rollup path reads them), with the columns `source`'s column SQL expects, every segment kept
/// to `tenants` (a condition over `tenant`, its values already bound).
pub(super) fn derived_table(
    counts: HourCounts,
    source: RollupSource,
    params: &mut Params,
    tenants: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let from_ms = from.timestamp_millis().div_euclid(MINUTE_MS) * MINUTE_MS;
    let tenants = tenants.map_or(String::new(), |condition| format!(" AND {condition}"));
    let selects: Vec<String> = segments(from_ms, to.timestamp_millis())
        .into_iter()
        .map(|(hours, low, high)| match counts {
            HourCounts::Dimension(dimension) => {
                let table = if hours { "dashboard_1h" } else { "dashboard_1m" };
                let value = match dimension {
                    "severity" => "CAST(value AS INTEGER) AS severity",
                    "source" => "value AS source_kind",
                    "host" => "value AS host",
                    _ => "value AS category",
                };
                let (low, high) = (params.bind(Param::Int(low)), params.bind(Param::Int(high)));
                format!(
                    "SELECT bucket_start_ms, tenant, {value}, count FROM {table} WHERE dimension = '{dimension}' \
                     AND bucket_start_ms >= {low} AND bucket_start_ms < {high} AND count <> 0{tenants}"
                )
            }
            HourCounts::Timescale => {
                let category = source == RollupSource::TimescaleCategory;
                let table = match (category, hours) {
                    (false, false) => "rollup_1m",
                    (false, true) => "rollup_1h",
                    (true, false) => "rollup_category_1m",
                    (true, true) => "rollup_category_1h",
                };
                let columns = if category { "category" } else { "source_kind, host, severity" };
                let time = |ms| Param::Time(DateTime::from_timestamp_millis(ms).unwrap_or(from));
                let (low, high) = (params.bind(time(low)), params.bind(time(high)));
                format!("SELECT time, tenant, {columns}, count FROM {table} WHERE time >= {low} AND time < {high}{tenants}")
            }
        })
        .collect();
    format!("({}) AS counts", selects.join(" UNION ALL "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_hours_come_from_hours_and_the_ends_from_minutes() {
        let hour = HOUR_MS;
        assert_eq!(segments(0, 3 * hour), vec![(true, 0, 3 * hour)]);
        assert_eq!(
            segments(17 * MINUTE_MS, 3 * hour + 5 * MINUTE_MS),
            vec![(true, hour, 3 * hour), (false, 17 * MINUTE_MS, hour), (false, 3 * hour, 3 * hour + 5 * MINUTE_MS)]
        );
        assert_eq!(segments(17 * MINUTE_MS, hour + 5 * MINUTE_MS), vec![(false, 17 * MINUTE_MS, hour + 5 * MINUTE_MS)]);
    }

    #[test]
    fn dimension_counts_answer_one_rolled_up_column() {
        use Column::*;
        let source = RollupSource::SqliteSource;
        assert_eq!(HourCounts::for_columns(source, &[]), Some(HourCounts::Dimension("source")));
        assert_eq!(HourCounts::for_columns(source, &[Severity, Tenant, Severity]), Some(HourCounts::Dimension("severity")));
        assert_eq!(HourCounts::for_columns(source, &[Host, Severity]), None);
        assert_eq!(HourCounts::for_columns(RollupSource::TimescaleSource, &[Host, Severity]), Some(HourCounts::Timescale));
    }
}
