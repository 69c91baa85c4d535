//! The search language: a KQL-shaped pipe over `events`, `alerts` and `dead_letters`, parsed
//! into a syntax tree and checked into one typed [`Plan`] that each store compiles to its SQL.
//!
//! It lives with the schemas because both sides use it: the connectors compile plans to SQL,
//! the pipeline checks queries before a job runs.

mod ast;
mod check;
mod error;
mod parse;
mod plan;

pub use error::QueryError;
pub use parse::{MAX_DEPTH, MAX_NESTING};
pub use plan::{Aggregate, ArithOp, Column, CompareOp, Expr, ExprKind, Order, Output, Plan, Stage, Table, TextOp, Type, Value};

use chrono::{DateTime, Utc};

/// Parses and checks `text`; `now` is what `now()` and `ago()` are relative to. Every error
/// names its position, like a compiler.
pub fn compile(text: &str, now: DateTime<Utc>) -> Result<Plan, QueryError> {
    let syntax = parse::parse_syntax(text)?;
    check::check(text, &syntax, now)
}

#[cfg(test)]
mod tests;
