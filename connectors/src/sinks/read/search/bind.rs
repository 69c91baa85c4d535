//! A compiled search's parameters bound for each dialect: never spliced into the SQL text.

use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteArguments;
use sqlx::Arguments;

use super::expr::Param;

/// `params` bound for SQLite, which keeps times as microseconds.
pub(super) fn sqlite_arguments<'p>(params: impl IntoIterator<Item = &'p Param>) -> Result<SqliteArguments, sqlx::Error> {
    let mut arguments = SqliteArguments::default();
    for param in params {
        match param {
            Param::Text(text) => arguments.add(text.clone()),
            Param::Int(number) => arguments.add(*number),
            Param::Float(number) => arguments.add(*number),
            Param::Time(time) => arguments.add(time.timestamp_micros()),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}

/// `params` bound for PostgreSQL.
pub(super) fn postgres_arguments(params: &[Param]) -> Result<PgArguments, sqlx::Error> {
    let mut arguments = PgArguments::default();
    for param in params {
        match param {
            Param::Text(text) => arguments.add(text.clone()),
            Param::Int(number) => arguments.add(*number),
            Param::Float(number) => arguments.add(*number),
            Param::Time(time) => arguments.add(*time),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}
