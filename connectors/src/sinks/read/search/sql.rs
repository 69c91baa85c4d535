//! A typed plan to one SQL statement: stages fold into a `SELECT` level while they can, and wrap
//! it as a subquery when they cannot (a `where` after `summarize`, anything after `take`).
//! The tenant filter and the time range always come first, from the caller, never the query.

use chrono::{DateTime, Utc};
use securewatch_schemas::query::{Aggregate, Column, ExprKind, Order, Plan, Stage, Table, Type};
use securewatch_schemas::TenantScope;
use serde::Serialize;

use super::expr::{column_sql, like_pattern, Dialect, ExprCompiler, Param, Params, RollupSource};
use super::hours::{derived_table, HourCounts};
use super::level::{select, wrap, Group, Level};

/// How a query is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchPath {
    /// Reading stored rows, in time slices newest first (progress per slice).
    SlicedScan,
    /// Reading stored rows in one statement (progress jumps to 1 at the end).
    Scan,
    /// From the minute rollups: the whole minutes the range touches.
    Rollup,
    /// From the hour counts for the whole hours of the range and the minute counts at its ends:
    /// the same minutes as [`SearchPath::Rollup`], for bins of whole hours.
    HourRollup,
}

/// A compiled query: SQL, its parameters and how to read its rows.
#[derive(Clone, Debug)]
pub struct CompiledSearch {
    /// The statement. Parameters 1 and 2 are the time range (replaced per slice); on a sliced
    /// scan the last parameter is the row limit of the slice.
    pub sql: String,
    /// The bound values, in placeholder order.
    pub params: Vec<Param>,
    /// How it is answered.
    pub path: SearchPath,
    /// Result columns and their types.
    pub columns: Vec<(String, Type)>,
    /// Most rows the query itself asks for (`take`), when it ends with one.
    pub take: Option<u64>,
    /// A statement counting the stored rows the query reads (its time range and tenants, none
    /// of its conditions): the events, or the rollup rows on a rollup path. It takes the first
    /// `scanned_params` parameters.
    pub scanned_sql: String,
    /// How many of [`CompiledSearch::params`] `scanned_sql` takes.
    pub scanned_params: usize,
    /// SQLite's sliced scans of events: the same statement reading the rows stored last first
    /// (by `seq`, from a bound in one more parameter after the others), each row followed by its
    /// `seq` and `time_us`; a small `take` tries it before the time index (see
    /// [`super::newest`]).
    pub newest_stored_sql: Option<String>,
}

/// Which rollup tables a store keeps, when any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollupStore {
    /// SQLite's rollup tables.
    Sqlite,
    /// Plain PostgreSQL's rollup tables.
    PostgresPlain,
    /// TimescaleDB's continuous aggregates.
    Timescale,
}

impl RollupStore {
    fn sources(self) -> [RollupSource; 2] {
        match self {
            RollupStore::Sqlite => [RollupSource::SqliteSource, RollupSource::SqliteCategory],
            RollupStore::PostgresPlain => [RollupSource::PostgresSource, RollupSource::PostgresCategory],
            RollupStore::Timescale => [RollupSource::TimescaleSource, RollupSource::TimescaleCategory],
        }
    }
}

const MINUTE_MICROS: i64 = 60_000_000;
/// The names of the columns [`CompiledSearch::newest_stored_sql`] appends.
const STORED_SEQ: &str = "#stored_seq";
const STORED_TIME: &str = "#stored_time";
const HOUR_MICROS: i64 = 60 * MINUTE_MICROS;

/// The rollup that answers `plan`, when one does: only `where`s and one `summarize` of
/// `count()`s grouped by `bin(time, whole minutes)` and rolled-up columns, then anything. With
/// it, the hour counts that answer it too: when every bin is whole hours, no `where` reads the
/// time, and the store keeps hour counts of those columns.
fn rollup_for(plan: &Plan, store: RollupStore) -> Option<(RollupSource, Option<HourCounts>)> {
    if plan.table != Table::Events {
        return None;
    }
    let summarize = plan.stages.iter().position(|stage| matches!(stage, Stage::Summarize { .. }))?;
    let Stage::Summarize { aggregates, keys } = &plan.stages[summarize] else { return None };
    if !aggregates.iter().all(|(_, aggregate)| matches!(aggregate, Aggregate::Count)) {
        return None;
    }
    let mut columns = Vec::new();
    let mut whole_hours = true;
    for key in keys {
        match &key.expr.kind {
            ExprKind::BinTime(time, width) if time.kind == ExprKind::Column(Column::Time) && width % MINUTE_MICROS == 0 => {
                whole_hours &= width % HOUR_MICROS == 0;
            }
            ExprKind::Column(column) if *column != Column::Time => columns.push(*column),
            _ => return None,
        }
    }
    for stage in &plan.stages[..summarize] {
        let Stage::Where(predicate) = stage else { return None };
        if !only_columns(predicate, &mut columns) {
            return None;
        }
    }
    let source = store.sources().into_iter().find(|source| columns.iter().all(|column| source.answers(*column)))?;
    let hours = if whole_hours && !columns.contains(&Column::Time) { HourCounts::for_columns(source, &columns) } else { None };
    Some((source, hours))
}

/// Collects the columns `expr` reads; false when it reads anything but stored columns and constants.
fn only_columns(expr: &securewatch_schemas::query::Expr, columns: &mut Vec<Column>) -> bool {
    use ExprKind::*;
    match &expr.kind {
        Column(column) => {
            columns.push(*column);
            true
        }
        Value(_) => true,
        Field(_) | Named(_) => false,
        Compare(_, a, b) | And(a, b) | Or(a, b) | Arith(_, a, b) => only_columns(a, columns) && only_columns(b, columns),
        Not(a) | IsNull(a, _) | Negate(a) | Lower(a) | Upper(a) | Length(a) | BinTime(a, _) => only_columns(a, columns),
        TextMatch { subject, .. } => only_columns(subject, columns),
        In { subject, list, .. } => only_columns(subject, columns) && list.iter().all(|item| only_columns(item, columns)),
        Between { subject, low, high, .. } => {
            only_columns(subject, columns) && only_columns(low, columns) && only_columns(high, columns)
        }
    }
}

/// Whether a plan can run slice by slice: only row-wise stages, then `take`s.
fn sliceable(plan: &Plan) -> bool {
    let row_wise = plan.stages.iter().take_while(|stage| matches!(stage, Stage::Where(_) | Stage::Search(_) | Stage::Extend(_) | Stage::Project(_)));
    let rest = &plan.stages[row_wise.count()..];
    rest.iter().all(|stage| matches!(stage, Stage::Take(_)))
}

/// Compiles `plan` for `dialect` over `[from, to)` and the tenants of `scope`; `rollups` names
/// the store's rollup tables (`None`: never use them).
pub fn compile_search(
    plan: &Plan,
    dialect: Dialect,
    rollups: Option<RollupStore>,
    scope: &TenantScope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> CompiledSearch {
    let mut params = Params { dialect, values: Vec::new() };
    let chosen = rollups.and_then(|store| rollup_for(plan, store));
    let rollup = chosen.map(|(source, _)| source);
    let hours = chosen.and_then(|(_, hours)| hours);
    let sliced = rollup.is_none() && sliceable(plan);
    let path = match (chosen, sliced) {
        (Some((_, Some(_))), _) => SearchPath::HourRollup,
        (Some(_), _) => SearchPath::Rollup,
        (None, true) => SearchPath::SlicedScan,
        (None, false) => SearchPath::Scan,
    };
    let mut filters = Vec::new();
    if let (Some(source), Some(hours)) = (rollup, hours) {
        let tenants = tenant_filter(&mut params, scope);
        let from_table = derived_table(hours, source, &mut params, tenants.as_deref(), from, to);
        let scanned = (format!("SELECT COUNT(*) FROM {from_table}"), params.values.len());
        let level = Level { from: from_table, filters, named: Vec::new(), base: true, group: None, order: Vec::new(), limit: None };
        return finish(plan, rollup, params, level, path, false, String::new(), scanned);
    }
    let (table_name, time_sql) = match rollup {
        Some(source) if !source.has_time_column() => {
            // Buckets from the minute `from` falls in to the last that starts before `to`.
            let (low, high) = (params.bind(Param::Int(floor_minute_ms(from))), params.bind(Param::Int(to.timestamp_millis())));
            filters.push(format!("bucket_start_ms >= {low} AND bucket_start_ms < {high}"));
            (source.table().to_owned(), String::new())
        }
        Some(source) => {
            let whole_minutes = |time: DateTime<Utc>| DateTime::from_timestamp_millis(floor_minute_ms(time)).unwrap_or(time);
            let (low, high) = (params.bind(Param::Time(whole_minutes(from))), params.bind(Param::Time(to)));
            filters.push(format!("time >= {low} AND time < {high}"));
            (source.table().to_owned(), String::new())
        }
        None => {
            let time = column_sql(dialect, plan.table, Column::Time);
            let (low, high) = (params.bind(Param::Time(from)), params.bind(Param::Time(to)));
            filters.push(format!("{time} >= {low} AND {time} < {high}"));
            (plan.table.as_str().to_owned(), time.to_owned())
        }
    };
    filters.extend(tenant_filter(&mut params, scope));
    let scanned = (format!("SELECT COUNT(*) FROM {table_name} WHERE {}", filters.join(" AND ")), params.values.len());
    let level = Level { from: table_name, filters, named: Vec::new(), base: true, group: None, order: Vec::new(), limit: None };
    finish(plan, rollup, params, level, path, sliced, time_sql, scanned)
}

/// The condition that keeps `scope`'s tenants, its names bound; `None` for every tenant.
fn tenant_filter(params: &mut Params, scope: &TenantScope) -> Option<String> {
    match scope.tenants() {
        None => None,
        Some([]) => Some("1 = 0".to_owned()),
        Some(tenants) => {
            let placeholders: Vec<String> = tenants.iter().map(|tenant| params.bind(Param::Text(tenant.clone()))).collect();
            Some(format!("tenant IN ({})", placeholders.join(", ")))
        }
    }
}

/// Adds the plan's stages to the base `level` and writes the statement.
#[allow(clippy::too_many_arguments)]
fn finish(
    plan: &Plan,
    rollup: Option<RollupSource>,
    mut params: Params,
    mut level: Level,
    path: SearchPath,
    sliced: bool,
    time_sql: String,
    (scanned_sql, scanned_params): (String, usize),
) -> CompiledSearch {
    let dialect = params.dialect;
    let mut depth = 0;
    for stage in &plan.stages {
        add_stage(plan.table, rollup, &mut params, &mut level, &mut depth, stage);
    }
    let mut take = None;
    let mut newest_level = None;
    if sliced {
        take = level.limit.take();
        let stored_order = dialect == Dialect::Sqlite && plan.table == Table::Events;
        let free = |name: &str| !plan.columns.iter().any(|(column, _)| column == name);
        if stored_order && free(STORED_SEQ) && free(STORED_TIME) {
            newest_level = Some(level.clone());
        }
        level.order.push(format!("{time_sql} DESC"));
    }
    let mut sql = select(plan.table, rollup, dialect, &level, &plan.columns, true);
    let mut newest_stored_sql = None;
    if sliced {
        let limit = params.bind(Param::Int(0));
        sql.push_str(&format!(" LIMIT {limit}"));
        if let Some(mut newest) = newest_level {
            newest.from = "events NOT INDEXED".to_owned();
            newest.filters.push(format!("seq > ?{}", params.values.len() + 1));
            newest.order = vec!["seq DESC".to_owned()];
            newest.named.push((STORED_SEQ.to_owned(), "seq".to_owned(), Type::Int));
            newest.named.push((STORED_TIME.to_owned(), "time_us".to_owned(), Type::Int));
            let mut columns = plan.columns.clone();
            columns.extend([(STORED_SEQ.to_owned(), Type::Int), (STORED_TIME.to_owned(), Type::Int)]);
            newest_stored_sql = Some(format!("{} LIMIT {limit}", select(plan.table, None, dialect, &newest, &columns, true)));
        }
    }
    CompiledSearch { sql, params: params.values, path, columns: plan.columns.clone(), take, scanned_sql, scanned_params, newest_stored_sql }
}

fn floor_minute_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis().div_euclid(60_000) * 60_000
}

/// Folds `stage` into `level`, wrapping it first when it cannot take the stage.
fn add_stage(table: Table, rollup: Option<RollupSource>, params: &mut Params, level: &mut Level, depth: &mut usize, stage: &Stage) {
    let sealed = level.group.is_some() || level.limit.is_some();
    let needs_wrap = match stage {
        Stage::Take(_) => false,
        Stage::Sort(_) => sealed,
        Stage::Summarize { .. } | Stage::Distinct(_) | Stage::Count => sealed || !level.order.is_empty(),
        _ => sealed,
    };
    if needs_wrap {
        wrap(table, rollup, params.dialect, level, depth);
    }
    let rollup = if level.base { rollup } else { None };
    let named = level.named.clone();
    let mut compiler = ExprCompiler { table, rollup, params, named: &named };
    match stage {
        Stage::Where(predicate) => level.filters.push(compiler.sql(predicate)),
        Stage::Search(term) => {
            let like = if compiler.params.dialect == Dialect::Sqlite { "LIKE" } else { "ILIKE" };
            let pattern = compiler.params.bind(Param::Text(like_pattern("%", term, "%")));
            level.filters.push(format!("(message {like} {pattern} ESCAPE '\\')"));
        }
        Stage::Extend(outputs) => {
            let compiled: Vec<_> = outputs.iter().map(|output| (output.name.clone(), compiler.sql(&output.expr), output.expr.ty)).collect();
            level.named.extend(compiled);
        }
        Stage::Project(outputs) => {
            level.named = outputs.iter().map(|output| (output.name.clone(), compiler.sql(&output.expr), output.expr.ty)).collect();
            level.base = false;
        }
        Stage::Summarize { aggregates, keys }
            if compiler.params.dialect == Dialect::Sqlite && aggregates.iter().any(|(_, aggregate)| matches!(aggregate, Aggregate::Percentile(..))) =>
        {
            super::percentile::summarize(table, compiler, level, depth, aggregates, keys);
        }
        Stage::Summarize { aggregates, keys } => {
            let keys = keys.iter().map(|key| (key.name.clone(), compiler.sql(&key.expr), key.expr.ty)).collect();
            let aggregates = aggregates
                .iter()
                .map(|(name, aggregate)| {
                    let sql = match (aggregate, rollup) {
                        (Aggregate::Count, Some(_)) => "SUM(count)".to_owned(),
                        _ => compiler.aggregate(aggregate),
                    };
                    (name.clone(), sql, aggregate.result_type())
                })
                .collect();
            level.group = Some(Group { keys, aggregates });
        }
        Stage::Distinct(outputs) => {
            let keys = outputs.iter().map(|output| (output.name.clone(), compiler.sql(&output.expr), output.expr.ty)).collect();
            level.group = Some(Group { keys, aggregates: Vec::new() });
        }
        Stage::Count => {
            let count = if rollup.is_some() { "SUM(count)" } else { "COUNT(*)" };
            level.group = Some(Group { keys: Vec::new(), aggregates: vec![("count_".to_owned(), count.to_owned(), Type::Int)] });
        }
        Stage::Sort(keys) => {
            level.order = keys
                .iter()
                .map(|(key, order)| match order {
                    Order::Asc => format!("{} ASC NULLS FIRST", compiler.sql(key)),
                    Order::Desc => format!("{} DESC NULLS LAST", compiler.sql(key)),
                })
                .collect();
        }
        Stage::Take(n) => level.limit = Some(level.limit.map_or(*n, |limit| limit.min(*n))),
    }
}

