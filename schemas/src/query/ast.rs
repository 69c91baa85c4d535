//! The syntax tree of a query as written, every node with its byte span in the query text.

use std::ops::Range;

/// Byte range of a node in the query text.
pub type Span = Range<usize>;

/// A query as written: a table and a pipe of stages.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxQuery {
    /// The table name and where it was written.
    pub table: (String, Span),
    /// The stages after the table, in order.
    pub stages: Vec<SyntaxStage>,
}

/// One stage of the pipe and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxStage {
    /// What the stage does.
    pub kind: StageKind,
    /// Where it was written.
    pub span: Span,
}

/// An expression, optionally named (`name = expr`).
#[derive(Clone, Debug, PartialEq)]
pub struct Named {
    /// The name given, if any.
    pub name: Option<String>,
    /// The expression.
    pub expr: SyntaxExpr,
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// The stages of the language.
#[derive(Clone, Debug, PartialEq)]
pub enum StageKind {
    /// `where <predicate>`.
    Where(SyntaxExpr),
    /// `search "term"`: free text, case-insensitive.
    Search(String),
    /// `project a, b = expr`.
    Project(Vec<Named>),
    /// `extend name = expr, ...`.
    Extend(Vec<Named>),
    /// `summarize aggs [by keys]`.
    Summarize {
        /// The aggregations (`count()`, `n = dcount(host)`).
        aggregates: Vec<Named>,
        /// The group keys.
        by: Vec<Named>,
    },
    /// `top N by expr [asc|desc]` (descending unless told).
    Top {
        /// How many rows.
        n: u64,
        /// The ranking expression.
        by: SyntaxExpr,
        /// The direction.
        order: Order,
    },
    /// `sort by a [asc|desc], ...` (descending unless told, as in KQL).
    Sort(Vec<(SyntaxExpr, Order)>),
    /// `take N` / `limit N`.
    Take(u64),
    /// `distinct a, b`.
    Distinct(Vec<Named>),
    /// `count`: one row with the number of rows.
    Count,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `=~`: equal ignoring case.
    EqNoCase,
    /// `!~`: not equal ignoring case.
    NeNoCase,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Text operators (all case-insensitive, as in KQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextOp {
    /// `has`: a whole term.
    Has,
    /// `contains`: a substring.
    Contains,
    /// `startswith`
    StartsWith,
    /// `endswith`
    EndsWith,
    /// `matches regex`
    Matches,
}

impl TextOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            TextOp::Has => "has",
            TextOp::Contains => "contains",
            TextOp::StartsWith => "startswith",
            TextOp::EndsWith => "endswith",
            TextOp::Matches => "matches regex",
        }
    }
}

/// Arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// An expression and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxExpr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// The expressions of the language.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A column or named value: `host`, `source.kind`, `count_`.
    Name(String),
    /// A source field: `fields.data.srcip` or `['origin@32473.user']` (the field's own name).
    Field(String),
    /// `"text"` or `'text'`.
    Text(String),
    /// An integer.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A timespan literal (`5m`, `1h`, `250ms`), in microseconds.
    Timespan(i64),
    /// `datetime(2026-01-02T03:04:05Z)`: the text inside the parentheses.
    Datetime(String),
    /// A function call: `ago(1h)`, `count()`, `bin(time, 5m)`.
    Call(String, Vec<SyntaxExpr>),
    /// `a == b` and the other comparisons.
    Compare(CompareOp, Box<SyntaxExpr>, Box<SyntaxExpr>),
    /// `a has b` and the other text operators; `negated` for `!has` etc.
    TextMatch {
        /// The operator.
        op: TextOp,
        /// `!has`, `!contains`, ...
        negated: bool,
        /// The text searched.
        subject: Box<SyntaxExpr>,
        /// The term, substring, prefix, suffix or pattern.
        pattern: Box<SyntaxExpr>,
    },
    /// `a in (x, y)` / `a !in (x, y)`.
    In {
        /// The value tested.
        subject: Box<SyntaxExpr>,
        /// The list.
        list: Vec<SyntaxExpr>,
        /// `!in`.
        negated: bool,
    },
    /// `a between (lo .. hi)` (inclusive) / `!between`.
    Between {
        /// The value tested.
        subject: Box<SyntaxExpr>,
        /// Lower bound.
        low: Box<SyntaxExpr>,
        /// Upper bound.
        high: Box<SyntaxExpr>,
        /// `!between`.
        negated: bool,
    },
    /// `a and b`.
    And(Box<SyntaxExpr>, Box<SyntaxExpr>),
    /// `a or b`.
    Or(Box<SyntaxExpr>, Box<SyntaxExpr>),
    /// `not x` / `not(x)`.
    Not(Box<SyntaxExpr>),
    /// `a + b` and the other arithmetic.
    Arith(ArithOp, Box<SyntaxExpr>, Box<SyntaxExpr>),
    /// `-x`.
    Negate(Box<SyntaxExpr>),
}

impl ExprKind {
    /// The expressions directly inside this one.
    pub fn children(&self) -> Vec<&SyntaxExpr> {
        match self {
            ExprKind::Name(_)
            | ExprKind::Field(_)
            | ExprKind::Text(_)
            | ExprKind::Int(_)
            | ExprKind::Float(_)
            | ExprKind::Bool(_)
            | ExprKind::Timespan(_)
            | ExprKind::Datetime(_) => Vec::new(),
            ExprKind::Call(_, args) => args.iter().collect(),
            ExprKind::Compare(_, left, right)
            | ExprKind::And(left, right)
            | ExprKind::Or(left, right)
            | ExprKind::Arith(_, left, right)
            | ExprKind::TextMatch { subject: left, pattern: right, .. } => vec![left, right],
            ExprKind::In { subject, list, .. } => std::iter::once(&**subject).chain(list).collect(),
            ExprKind::Between { subject, low, high, .. } => vec![subject, low, high],
            ExprKind::Not(inner) | ExprKind::Negate(inner) => vec![inner],
        }
    }
}
