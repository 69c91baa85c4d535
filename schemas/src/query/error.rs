//! Query errors as a compiler reports them: position, line and column, the line with a caret,
//! and what was expected.

use std::fmt;

use serde::Serialize;

/// A query that cannot run: where and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct QueryError {
    /// What is wrong ("expected an operator ...", "unknown function `cnt`").
    pub message: String,
    /// Byte offset of the problem in the query text.
    pub position: usize,
    /// Line of the problem, from 1.
    pub line: usize,
    /// Column of the problem (characters), from 1.
    pub column: usize,
    /// The query line with a caret under the problem, for display.
    pub pointer: String,
}

impl QueryError {
    /// An error at `position` (a byte offset, clamped to the text) of `query`.
    pub fn at(query: &str, position: usize, message: impl Into<String>) -> QueryError {
        let mut position = position.min(query.len());
        while !query.is_char_boundary(position) {
            position -= 1;
        }
        let line_start = query[..position].rfind('\n').map_or(0, |newline| newline + 1);
        let line_end = query[position..].find('\n').map_or(query.len(), |newline| position + newline);
        let line = query[..position].matches('\n').count() + 1;
        let column = query[line_start..position].chars().count() + 1;
        let text = &query[line_start..line_end];
        let pointer = format!("{text}\n{}^", " ".repeat(column - 1));
        QueryError { message: message.into(), position, line, column, pointer }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "line {}, column {}: {}\n{}", self.line, self.column, self.message, self.pointer)
    }
}
