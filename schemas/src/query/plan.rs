//! The typed plan: names resolved to columns, fields or earlier outputs, every expression typed,
//! `ago()`/`now()` fixed to the query's start. Each store compiles this, never the text.

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use super::ast::{ArithOp, CompareOp, Order, TextOp};

/// The tables a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Stored events.
    Events,
    /// Alerts (their time is the last evidence seen).
    Alerts,
    /// Dead letters (their time is when they were received).
    DeadLetters,
}

impl Table {
    /// The name as written in a query.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Events => "events",
            Table::Alerts => "alerts",
            Table::DeadLetters => "dead_letters",
        }
    }

    /// The stored columns of the table, by name.
    pub fn columns(self) -> &'static [(&'static str, Column)] {
        match self {
            Table::Events => &[
                ("time", Column::Time),
                ("received", Column::Received),
                ("host", Column::Host),
                ("severity", Column::Severity),
                ("category", Column::Category),
                ("message", Column::Message),
                ("source.kind", Column::SourceKind),
                ("source.name", Column::SourceName),
                ("source.peer", Column::SourcePeer),
                ("tenant", Column::Tenant),
                ("raw", Column::Raw),
            ],
            Table::Alerts => &[
                ("time", Column::Time),
                ("first_seen", Column::FirstSeen),
                ("rule_id", Column::RuleId),
                ("title", Column::Title),
                ("level", Column::Level),
                ("kind", Column::Kind),
                ("tenant", Column::Tenant),
            ],
            Table::DeadLetters => &[
                ("time", Column::Time),
                ("source.kind", Column::SourceKind),
                ("source.name", Column::SourceName),
                ("source.peer", Column::SourcePeer),
                ("reason", Column::Reason),
                ("detail", Column::Detail),
                ("tenant", Column::Tenant),
            ],
        }
    }
}

/// A stored column (which ones a table has: [`Table::columns`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    /// The table's time: event time, an alert's last evidence, a dead letter's arrival.
    Time,
    /// When an event was received.
    Received,
    /// The event's host.
    Host,
    /// The event's severity (named in results, ordered by code: `emergency` is 0).
    Severity,
    /// The event's category.
    Category,
    /// The event's message.
    Message,
    /// Kind of the source.
    SourceKind,
    /// Configured name of the source.
    SourceName,
    /// Remote peer of the source.
    SourcePeer,
    /// The tenant.
    Tenant,
    /// The raw record text of an event.
    Raw,
    /// An alert's first evidence time.
    FirstSeen,
    /// An alert's rule id.
    RuleId,
    /// An alert's title.
    Title,
    /// An alert's level.
    Level,
    /// An alert's kind (`rule` or the correlation type).
    Kind,
    /// Why a record was dead-lettered (label).
    Reason,
    /// Why a record was dead-lettered (explanation).
    Detail,
}

impl Column {
    /// The value type of the column.
    pub fn value_type(self) -> Type {
        match self {
            Column::Time | Column::Received | Column::FirstSeen => Type::Time,
            Column::Severity => Type::Severity,
            _ => Type::Text,
        }
    }
}

/// Value types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Type {
    /// Text.
    Text,
    /// A 64-bit integer.
    Int,
    /// A decimal number.
    Float,
    /// True or false.
    Bool,
    /// A point in time.
    Time,
    /// A duration.
    Timespan,
    /// A severity: a name in results, its code (0 most severe) in comparisons.
    Severity,
    /// A source field: text, compared as a number against numbers.
    Dynamic,
}

impl Type {
    /// The name in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Type::Text => "string",
            Type::Int => "int",
            Type::Float => "real",
            Type::Bool => "bool",
            Type::Time => "datetime",
            Type::Timespan => "timespan",
            Type::Severity => "severity",
            Type::Dynamic => "dynamic",
        }
    }

    /// Whether values of this type are numbers.
    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float)
    }
}

/// A constant.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Text.
    Text(String),
    /// An integer (also a severity code).
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A point in time.
    Time(DateTime<Utc>),
    /// A duration in microseconds.
    Timespan(i64),
}

/// A typed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it computes.
    pub kind: ExprKind,
    /// Its type.
    pub ty: Type,
}

/// Typed expressions.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A stored column.
    Column(Column),
    /// A source field by its own name (text).
    Field(String),
    /// An output of an earlier stage (`extend`, `project`, `summarize`).
    Named(String),
    /// A constant.
    Value(Value),
    /// A comparison.
    Compare(CompareOp, Box<Expr>, Box<Expr>),
    /// A case-insensitive text operator with a constant pattern.
    TextMatch {
        /// The operator.
        op: TextOp,
        /// Negated (`!has`).
        negated: bool,
        /// The text searched.
        subject: Box<Expr>,
        /// The term, substring, prefix, suffix or regular expression.
        pattern: String,
    },
    /// Membership in a list of constants-or-expressions.
    In {
        /// The value tested.
        subject: Box<Expr>,
        /// The list.
        list: Vec<Expr>,
        /// `!in`.
        negated: bool,
        /// `in~`-like comparison ignoring case (never set by the parser yet).
        ignore_case: bool,
    },
    /// Inclusive range.
    Between {
        /// The value tested.
        subject: Box<Expr>,
        /// Lower bound.
        low: Box<Expr>,
        /// Upper bound.
        high: Box<Expr>,
        /// `!between`.
        negated: bool,
    },
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Not.
    Not(Box<Expr>),
    /// `isnull(x)` (`negated`: `isnotnull(x)`).
    IsNull(Box<Expr>, bool),
    /// Arithmetic.
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// `-x`.
    Negate(Box<Expr>),
    /// `bin(time, width)`: the start of the time's bucket; the width in microseconds.
    BinTime(Box<Expr>, i64),
    /// `tolower(x)`.
    Lower(Box<Expr>),
    /// `toupper(x)`.
    Upper(Box<Expr>),
    /// `strlen(x)`.
    Length(Box<Expr>),
}

/// An aggregation of `summarize`.
#[derive(Clone, Debug, PartialEq)]
pub enum Aggregate {
    /// `count()`: rows.
    Count,
    /// `dcount(x)`: distinct non-null values (exact).
    DistinctCount(Expr),
    /// `min(x)`.
    Min(Expr),
    /// `max(x)`.
    Max(Expr),
    /// `sum(x)`.
    Sum(Expr),
    /// `avg(x)`.
    Avg(Expr),
    /// `percentile(x, p)`: the smallest value with at least `p` percent of the values at or
    /// below it (nearest rank).
    Percentile(Expr, f64),
}

impl Aggregate {
    /// The result type.
    pub fn result_type(&self) -> Type {
        match self {
            Aggregate::Count | Aggregate::DistinctCount(_) => Type::Int,
            Aggregate::Avg(_) => Type::Float,
            Aggregate::Sum(expr) | Aggregate::Percentile(expr, _) if expr.ty == Type::Dynamic => Type::Float,
            Aggregate::Min(expr) | Aggregate::Max(expr) | Aggregate::Sum(expr) | Aggregate::Percentile(expr, _) => {
                expr.ty
            }
        }
    }
}

/// A named output of a stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Its name.
    pub name: String,
    /// Its expression.
    pub expr: Expr,
}

/// One stage of a plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Keep rows where the predicate holds.
    Where(Expr),
    /// Keep events whose message contains the term, ignoring case.
    Search(String),
    /// Add columns.
    Extend(Vec<Output>),
    /// Keep only these columns.
    Project(Vec<Output>),
    /// Group and aggregate.
    Summarize {
        /// Named aggregations.
        aggregates: Vec<(String, Aggregate)>,
        /// Named group keys.
        keys: Vec<Output>,
    },
    /// Order rows.
    Sort(Vec<(Expr, Order)>),
    /// At most this many rows.
    Take(u64),
    /// Distinct combinations of these columns.
    Distinct(Vec<Output>),
    /// One row, `count_`: the number of rows.
    Count,
}

/// A checked query, ready for a store to compile.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The table read.
    pub table: Table,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// The result columns and their types.
    pub columns: Vec<(String, Type)>,
}
