//! `percentile()` on SQLite, which has no ordered-set aggregates: a window pass ranks each value
//! within its group, then the group keeps the first value whose rank reaches the share, the
//! same nearest-rank answer as PostgreSQL's `percentile_disc`.

use securewatch_schemas::query::{Aggregate, Output, Table, Type};

use super::expr::{Dialect, ExprCompiler};
use super::level::{wrap, Group, Level};

/// Folds a `summarize` holding percentiles into `level`: hidden key, value, rank and count
/// columns in a subquery, the aggregations over them.
pub(super) fn summarize(
    table: Table,
    compiler: ExprCompiler<'_>,
    level: &mut Level,
    depth: &mut usize,
    aggregates: &[(String, Aggregate)],
    keys: &[Output],
) {
    let mut compiler = compiler;
    let key_sql: Vec<String> = keys.iter().map(|key| compiler.sql(&key.expr)).collect();
    let partition = if key_sql.is_empty() { String::new() } else { format!("PARTITION BY {} ", key_sql.join(", ")) };
    for (index, (sql, key)) in key_sql.iter().zip(keys).enumerate() {
        level.named.push((format!("__key_{index}"), sql.clone(), key.expr.ty));
    }
    for (index, (_, aggregate)) in aggregates.iter().enumerate() {
        let value = match aggregate {
            Aggregate::Count => continue,
            Aggregate::Sum(expr) | Aggregate::Avg(expr) | Aggregate::Percentile(expr, _) => compiler.numeric_sql(expr),
            Aggregate::DistinctCount(expr) | Aggregate::Min(expr) | Aggregate::Max(expr) => compiler.sql(expr),
        };
        if let Aggregate::Percentile(..) = aggregate {
            let rank = format!("COUNT({value}) OVER ({partition}ORDER BY {value} ROWS UNBOUNDED PRECEDING)");
            let count = format!("COUNT({value}) OVER ({})", partition.trim_end());
            level.named.push((format!("__rank_{index}"), rank, Type::Int));
            level.named.push((format!("__count_{index}"), count, Type::Int));
        }
        level.named.push((format!("__value_{index}"), value, aggregate.result_type()));
    }
    wrap(table, None, Dialect::Sqlite, level, depth);
    let column = |level: &Level, name: String| {
        level.named.iter().find(|(named, _, _)| *named == name).map_or_else(|| "NULL".to_owned(), |(_, sql, _)| sql.clone())
    };
    let group_keys = keys
        .iter()
        .enumerate()
        .map(|(index, key)| (key.name.clone(), column(level, format!("__key_{index}")), key.expr.ty))
        .collect();
    let group_aggregates = aggregates
        .iter()
        .enumerate()
        .map(|(index, (name, aggregate))| {
            let value = column(level, format!("__value_{index}"));
            let sql = match aggregate {
                Aggregate::Count => "COUNT(*)".to_owned(),
                Aggregate::DistinctCount(_) => format!("COUNT(DISTINCT {value})"),
                Aggregate::Min(_) => format!("MIN({value})"),
                Aggregate::Max(_) => format!("MAX({value})"),
                Aggregate::Sum(_) => format!("SUM({value})"),
                Aggregate::Avg(_) => format!("AVG({value})"),
                Aggregate::Percentile(_, rank) => {
                    let (ranked, count) = (column(level, format!("__rank_{index}")), column(level, format!("__count_{index}")));
                    format!("MIN(CASE WHEN {ranked} >= {} * {count} THEN {value} END)", rank / 100.0)
                }
            };
            (name.clone(), sql, aggregate.result_type())
        })
        .collect();
    level.group = Some(Group { keys: group_keys, aggregates: group_aggregates });
}
