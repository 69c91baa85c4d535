//! One `SELECT` level of a compiled search: what it reads, filters, groups, orders and hands
//! on, its SQL, and wrapping it as the subquery of the next level.

use securewatch_schemas::query::{Table, Type};

use super::expr::{column_sql, quote, Dialect, RollupSource};

/// One `SELECT` being built.
#[derive(Clone)]
pub(super) struct Level {
    pub(super) from: String,
    pub(super) filters: Vec<String>,
    /// Names visible to the next stage: name, SQL, type.
    pub(super) named: Vec<(String, String, Type)>,
    /// Whether the table's own columns are still visible.
    pub(super) base: bool,
    pub(super) group: Option<Group>,
    pub(super) order: Vec<String>,
    pub(super) limit: Option<u64>,
}

/// The `GROUP BY` of a level: keys and aggregations, each name, SQL, type.
#[derive(Clone)]
pub(super) struct Group {
    pub(super) keys: Vec<(String, String, Type)>,
    pub(super) aggregates: Vec<(String, String, Type)>,
}

/// The names a level hands on, with their SQL and types.
pub(super) fn outputs(table: Table, rollup: Option<RollupSource>, dialect: Dialect, level: &Level) -> Vec<(String, String, Type)> {
    if let Some(group) = &level.group {
        return group.keys.iter().chain(&group.aggregates).cloned().collect();
    }
    let mut outputs: Vec<(String, String, Type)> = Vec::new();
    if level.base {
        for (name, column) in table.columns() {
            let sql = match rollup {
                Some(source) => source.column_sql(*column),
                None => column_sql(dialect, table, *column),
            };
            outputs.push(((*name).to_owned(), sql.to_owned(), column.value_type()));
        }
        if table == Table::Events && rollup.is_none() {
            let fields = if dialect == Dialect::Postgres { "CAST(fields AS TEXT)" } else { "fields" };
            outputs.push(("fields".to_owned(), fields.to_owned(), Type::Dynamic));
        }
    }
    for (name, sql, ty) in &level.named {
        outputs.retain(|(existing, _, _)| existing != name);
        outputs.push((name.clone(), sql.clone(), *ty));
    }
    outputs
}

/// The `SELECT` of `level`; the outermost one casts each column to the type it is read as.
pub(super) fn select(table: Table, rollup: Option<RollupSource>, dialect: Dialect, level: &Level, columns: &[(String, Type)], outermost: bool) -> String {
    let outputs = outputs(table, rollup, dialect, level);
    let items: Vec<String> = if outermost {
        columns
            .iter()
            .map(|(name, ty)| {
                let sql = outputs.iter().find(|(output, _, _)| output == name).map_or("NULL", |(_, sql, _)| sql.as_str());
                format!("{} AS {}", cast_for_reading(dialect, sql, *ty), quote(name))
            })
            .collect()
    } else {
        outputs.iter().map(|(name, sql, _)| format!("{sql} AS {}", quote(name))).collect()
    };
    let mut sql = format!("SELECT {} FROM {}", items.join(", "), level.from);
    if !level.filters.is_empty() {
        sql.push_str(&format!(" WHERE {}", level.filters.join(" AND ")));
    }
    if let Some(group) = &level.group {
        if !group.keys.is_empty() {
            let keys: Vec<&str> = group.keys.iter().map(|(_, sql, _)| sql.as_str()).collect();
            sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
        }
    }
    if !level.order.is_empty() {
        sql.push_str(&format!(" ORDER BY {}", level.order.join(", ")));
    }
    if let Some(limit) = level.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    sql
}

/// Numbers read as 64-bit values in both stores (PostgreSQL's sums are `numeric`, its lengths
/// `int4`, severities `int2`).
fn cast_for_reading(dialect: Dialect, sql: &str, ty: Type) -> String {
    match (dialect, ty) {
        (_, Type::Int | Type::Severity | Type::Timespan) => format!("CAST({sql} AS BIGINT)"),
        (Dialect::Sqlite, Type::Float) => format!("CAST({sql} AS REAL)"),
        (Dialect::Postgres, Type::Float) => format!("CAST({sql} AS DOUBLE PRECISION)"),
        _ => sql.to_owned(),
    }
}

/// Makes `level` a subquery of a new level that sees only its outputs.
pub(super) fn wrap(table: Table, rollup: Option<RollupSource>, dialect: Dialect, level: &mut Level, depth: &mut usize) {
    *depth += 1;
    let alias = format!("level_{depth}");
    let outputs = outputs(table, if level.base { rollup } else { None }, dialect, level);
    let inner = select(table, if level.base { rollup } else { None }, dialect, level, &[], false);
    let named = outputs.into_iter().map(|(name, _, ty)| (name.clone(), format!("{alias}.{}", quote(&name)), ty)).collect();
    *level = Level { from: format!("({inner}) AS {alias}"), filters: Vec::new(), named, base: false, group: None, order: Vec::new(), limit: None };
}
