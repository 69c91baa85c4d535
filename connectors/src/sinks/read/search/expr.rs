//! Typed expressions to SQL text for one dialect; every constant from the query becomes a bound
//! parameter (numbered, so a fragment may be repeated or nested freely).

use chrono::{DateTime, Utc};
use securewatch_schemas::query::{Aggregate, ArithOp, Column, CompareOp, Expr, ExprKind, Table, TextOp, Type, Value};

/// The SQL dialects a plan compiles to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded store.
    Sqlite,
    /// PostgreSQL (plain or TimescaleDB).
    Postgres,
}

/// A bound parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// A point in time (SQLite: microseconds since the epoch; PostgreSQL: timestamptz).
    Time(DateTime<Utc>),
}

/// Collects parameters and writes their placeholders.
#[derive(Debug)]
pub(super) struct Params {
    pub(super) dialect: Dialect,
    pub(super) values: Vec<Param>,
}

impl Params {
    /// Binds `param` and returns its placeholder (`?N` / `$N`).
    pub(super) fn bind(&mut self, param: Param) -> String {
        self.values.push(param);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.values.len()),
            Dialect::Postgres => format!("${}", self.values.len()),
        }
    }
}

/// The SQL of a stored column of `table`.
pub(super) fn column_sql(dialect: Dialect, table: Table, column: Column) -> &'static str {
    use Column::*;
    match (dialect, table, column) {
        (Dialect::Sqlite, Table::Events, Time) => "time_us",
        (Dialect::Sqlite, Table::Events, Received) => "received_us",
        (Dialect::Sqlite, Table::Alerts, Time) => "(last_seen_ms * 1000)",
        (Dialect::Sqlite, Table::Alerts, FirstSeen) => "(first_seen_ms * 1000)",
        (Dialect::Sqlite, Table::DeadLetters, Time) => "received_us",
        (Dialect::Postgres, Table::Events, Time) => "time",
        (Dialect::Postgres, Table::Events, Received) => "received",
        (Dialect::Postgres, Table::Alerts, Time) => "last_seen",
        (Dialect::Postgres, Table::Alerts, FirstSeen) => "first_seen",
        (Dialect::Postgres, Table::DeadLetters, Time) => "received",
        (_, _, Host) => "host",
        (_, _, Severity) => "severity",
        (_, _, Category) => "category",
        (_, _, Message) => "message",
        (_, _, SourceKind) => "source_kind",
        (_, _, SourceName) => "source_name",
        (_, _, SourcePeer) => "peer",
        (_, _, Tenant) => "tenant",
        (_, _, Raw) => "raw",
        (_, _, RuleId) => "rule_id",
        (_, _, Title) => "title",
        (_, _, Level) => "level",
        (_, _, Kind) => "kind",
        (_, _, Reason) => "reason",
        (_, _, Detail) => "detail",
        (_, _, Received | FirstSeen) => "NULL",
    }
}

/// A rollup table a summary can be answered from, as each store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollupSource {
    /// `rollup_source` (minute buckets by source kind, host, severity) in SQLite.
    SqliteSource,
    /// `rollup_category` in SQLite.
    SqliteCategory,
    /// `rollup_source` as a table in plain PostgreSQL.
    PostgresSource,
    /// `rollup_category` as a table in plain PostgreSQL.
    PostgresCategory,
    /// The `rollup_1m` continuous aggregate of TimescaleDB.
    TimescaleSource,
    /// The `rollup_category_1m` continuous aggregate of TimescaleDB.
    TimescaleCategory,
}

impl RollupSource {
    /// The table or view read.
    pub(super) fn table(self) -> &'static str {
        match self {
            RollupSource::SqliteSource | RollupSource::PostgresSource => "rollup_source",
            RollupSource::SqliteCategory | RollupSource::PostgresCategory => "rollup_category",
            RollupSource::TimescaleSource => "rollup_1m",
            RollupSource::TimescaleCategory => "rollup_category_1m",
        }
    }

    /// Whether its time column is `time` (timestamptz) rather than `bucket_start_ms`.
    pub(super) fn has_time_column(self) -> bool {
        matches!(self, RollupSource::TimescaleSource | RollupSource::TimescaleCategory)
    }

    /// The columns it answers.
    pub(super) fn answers(self, column: Column) -> bool {
        let category = matches!(self, RollupSource::SqliteCategory | RollupSource::PostgresCategory | RollupSource::TimescaleCategory);
        match column {
            Column::Time | Column::Tenant => true,
            Column::Category => category,
            Column::Host | Column::Severity | Column::SourceKind => !category,
            _ => false,
        }
    }

    /// The SQL of a column over this rollup (as the events table types it).
    pub(super) fn column_sql(self, column: Column) -> &'static str {
        match (self, column) {
            (RollupSource::SqliteSource | RollupSource::SqliteCategory, Column::Time) => "(bucket_start_ms * 1000)",
            (RollupSource::PostgresSource | RollupSource::PostgresCategory, Column::Time) => "to_timestamp(bucket_start_ms / 1000.0)",
            (_, Column::Time) => "time",
            (RollupSource::TimescaleSource, Column::Host) => "host",
            (RollupSource::TimescaleCategory, Column::Category) => "category",
            (_, Column::Host) => "NULLIF(host, '')",
            (_, Column::Category) => "NULLIF(category, '')",
            (_, Column::Severity) => "severity",
            (_, Column::SourceKind) => "source_kind",
            (_, Column::Tenant) => "tenant",
            _ => "NULL",
        }
    }
}

/// A quoted identifier (names come from the query: double quotes are doubled).
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a LIKE pattern: `%`, `_` and `\` escaped, wrapped by `before` and `after`.
pub(super) fn like_pattern(before: &str, text: &str, after: &str) -> String {
    let mut pattern = String::from(before);
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push_str(after);
    pattern
}

/// Compiles expressions of one table in one dialect; `named` resolves earlier outputs.
pub(super) struct ExprCompiler<'a> {
    pub(super) table: Table,
    /// Set when the level reads a rollup table: columns map onto it.
    pub(super) rollup: Option<RollupSource>,
    pub(super) params: &'a mut Params,
    pub(super) named: &'a [(String, String, Type)],
}

impl ExprCompiler<'_> {
    fn dialect(&self) -> Dialect {
        self.params.dialect
    }

    /// The SQL of `expr`.
    pub(super) fn sql(&mut self, expr: &Expr) -> String {
        match &expr.kind {
            ExprKind::Column(column) => match self.rollup {
                Some(rollup) => rollup.column_sql(*column).to_owned(),
                None => column_sql(self.dialect(), self.table, *column).to_owned(),
            },
            ExprKind::Field(name) => self.field(name, false),
            ExprKind::Named(name) => {
                self.named.iter().rev().find(|(named, _, _)| named == name).map(|(_, sql, _)| sql.clone()).unwrap_or_else(|| "NULL".to_owned())
            }
            ExprKind::Value(value) => self.value(value),
            ExprKind::Compare(op, left, right) => self.compare(*op, left, right),
            ExprKind::TextMatch { op, negated, subject, pattern } => {
                let subject = self.sql(subject);
                let test = self.text_match(*op, &subject, pattern);
                if *negated { format!("(NOT {test})") } else { test }
            }
            ExprKind::In { subject, list, negated, .. } => {
                let subject_sql = self.operand(subject, list.first().map_or(subject.ty, |first| first.ty));
                let items: Vec<String> = list.iter().map(|item| self.operand(item, subject.ty)).collect();
                format!("({subject_sql} {}IN ({}))", if *negated { "NOT " } else { "" }, items.join(", "))
            }
            ExprKind::Between { subject, low, high, negated } => {
                let subject_sql = self.operand(subject, low.ty);
                let (low, high) = (self.operand(low, subject.ty), self.operand(high, subject.ty));
                format!("({subject_sql} {}BETWEEN {low} AND {high})", if *negated { "NOT " } else { "" })
            }
            ExprKind::And(left, right) => format!("({} AND {})", self.sql(left), self.sql(right)),
            ExprKind::Or(left, right) => format!("({} OR {})", self.sql(left), self.sql(right)),
            ExprKind::Not(inner) => format!("(NOT {})", self.sql(inner)),
            ExprKind::IsNull(inner, negated) => format!("({} IS {}NULL)", self.sql(inner), if *negated { "NOT " } else { "" }),
            ExprKind::Arith(op, left, right) => self.arith(*op, left, right, expr.ty),
            ExprKind::Negate(inner) => format!("(-{})", self.numeric(inner)),
            ExprKind::BinTime(time, width) => {
                let time = self.sql(time);
                match self.dialect() {
                    Dialect::Sqlite => format!("(({time} / {width}) * {width})"),
                    Dialect::Postgres => {
                        format!("date_bin(INTERVAL '{width} microseconds', {time}, TIMESTAMPTZ '1970-01-01 00:00:00+00')")
                    }
                }
            }
            ExprKind::Lower(inner) => format!("lower({})", self.sql(inner)),
            ExprKind::Upper(inner) => format!("upper({})", self.sql(inner)),
            ExprKind::Length(inner) => format!("length({})", self.sql(inner)),
        }
    }

    /// A source field as text, or as a number where `numeric` (non-numbers read as null).
    fn field(&mut self, name: &str, numeric: bool) -> String {
        match self.dialect() {
            Dialect::Sqlite => {
                let path = self.params.bind(Param::Text(format!("$.\"{name}\"")));
                if numeric {
                    format!("(CASE WHEN json_type(fields, {path}) IN ('integer', 'real') THEN json_extract(fields, {path}) END)")
                } else {
                    format!("CAST(json_extract(fields, {path}) AS TEXT)")
                }
            }
            Dialect::Postgres => {
                let key = self.params.bind(Param::Text(name.to_owned()));
                if numeric {
                    format!("(CASE WHEN jsonb_typeof(fields -> {key}) = 'number' THEN (fields ->> {key})::double precision END)")
                } else {
                    format!("(fields ->> {key})")
                }
            }
        }
    }

    /// `expr` as a number when it is a field (else as is).
    pub(super) fn numeric_sql(&mut self, expr: &Expr) -> String {
        self.numeric(expr)
    }

    fn numeric(&mut self, expr: &Expr) -> String {
        match &expr.kind {
            ExprKind::Field(name) => self.field(name, true),
            _ => self.sql(expr),
        }
    }

    /// `expr` read the way a comparison with a value of type `other` needs it.
    fn operand(&mut self, expr: &Expr, other: Type) -> String {
        if expr.ty == Type::Dynamic && other.is_numeric() {
            self.numeric(expr)
        } else {
            self.sql(expr)
        }
    }

    fn value(&mut self, value: &Value) -> String {
        match value {
            Value::Text(text) => self.params.bind(Param::Text(text.clone())),
            Value::Int(number) => self.params.bind(Param::Int(*number)),
            Value::Float(number) => self.params.bind(Param::Float(*number)),
            Value::Bool(true) => "TRUE".to_owned(),
            Value::Bool(false) => "FALSE".to_owned(),
            Value::Time(time) => self.params.bind(Param::Time(*time)),
            Value::Timespan(micros) => self.params.bind(Param::Int(*micros)),
        }
    }

    fn compare(&mut self, op: CompareOp, left: &Expr, right: &Expr) -> String {
        let (l, r) = (self.operand(left, right.ty), self.operand(right, left.ty));
        let symbol = match op {
            CompareOp::EqNoCase => return format!("(lower({l}) = lower({r}))"),
            CompareOp::NeNoCase => return format!("(lower({l}) <> lower({r}))"),
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        };
        format!("({l} {symbol} {r})")
    }

    fn text_match(&mut self, op: TextOp, subject: &str, pattern: &str) -> String {
        let like = match self.dialect() {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        };
        let regex = match self.dialect() {
            Dialect::Sqlite => "REGEXP",
            Dialect::Postgres => "~",
        };
        let like_test = |before: &str, after: &str, params: &mut Params| {
            let bound = params.bind(Param::Text(like_pattern(before, pattern, after)));
            format!("({subject} {like} {bound} ESCAPE '\\')")
        };
        match op {
            TextOp::Contains => like_test("%", "%", self.params),
            TextOp::StartsWith => like_test("", "%", self.params),
            TextOp::EndsWith => like_test("%", "", self.params),
            TextOp::Has => {
                // The substring test first: cheap, and it rejects most rows before the regex runs.
                let substring = like_test("%", "%", self.params);
                let term = self.params.bind(Param::Text(format!(
                    "(?i)(^|[^[:alnum:]_]){}($|[^[:alnum:]_])",
                    regex::escape(pattern)
                )));
                format!("({substring} AND {subject} {regex} {term})")
            }
            TextOp::Matches => {
                let bound = self.params.bind(Param::Text(pattern.to_owned()));
                format!("({subject} {regex} {bound})")
            }
        }
    }

    fn arith(&mut self, op: ArithOp, left: &Expr, right: &Expr, result: Type) -> String {
        let symbol = match op {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        };
        if self.dialect() == Dialect::Postgres {
            match (left.ty, right.ty) {
                (Type::Time, Type::Timespan) | (Type::Timespan, Type::Time) => {
                    let (l, r) = (self.sql(left), self.sql(right));
                    let (time, span) = if left.ty == Type::Time { (l, r) } else { (r, l) };
                    return format!("({time} {symbol} ({span} * INTERVAL '1 microsecond'))");
                }
                (Type::Time, Type::Time) => {
                    let (l, r) = (self.sql(left), self.sql(right));
                    return format!("CAST(EXTRACT(EPOCH FROM ({l} - {r})) * 1000000 AS BIGINT)");
                }
                _ => {}
            }
        }
        let (l, r) = (self.numeric(left), self.numeric(right));
        if result == Type::Float && op == ArithOp::Div {
            return format!("(CAST({l} AS DOUBLE PRECISION) / {r})").replace(
                "DOUBLE PRECISION",
                if self.dialect() == Dialect::Sqlite { "REAL" } else { "DOUBLE PRECISION" },
            );
        }
        format!("({l} {symbol} {r})")
    }

    /// The SQL of an aggregation (percentiles on SQLite are built by the stage compiler).
    pub(super) fn aggregate(&mut self, aggregate: &Aggregate) -> String {
        match aggregate {
            Aggregate::Count => "COUNT(*)".to_owned(),
            Aggregate::DistinctCount(expr) => format!("COUNT(DISTINCT {})", self.sql(expr)),
            Aggregate::Min(expr) => format!("MIN({})", self.sql(expr)),
            Aggregate::Max(expr) => format!("MAX({})", self.sql(expr)),
            Aggregate::Sum(expr) => format!("SUM({})", self.numeric(expr)),
            Aggregate::Avg(expr) => format!("AVG({})", self.numeric(expr)),
            Aggregate::Percentile(expr, rank) => {
                let value = self.numeric(expr);
                format!("percentile_disc({}) WITHIN GROUP (ORDER BY {value})", rank / 100.0)
            }
        }
    }
}
