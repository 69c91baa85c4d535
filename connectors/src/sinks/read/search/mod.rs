//! Search: a typed plan of the query language compiled to the SQL of the store that answers it,
//! run with the caller's tenant scope and time range, its rows streamed to a sink.

mod bind;
mod expr;
mod hours;
mod level;
mod newest;
mod percentile;
mod run;
mod sql;
mod values;

pub use expr::{Dialect, Param, RollupSource};
pub use run::{SearchOutcome, SearchSink, SLICES};
pub use sql::{compile_search, CompiledSearch, RollupStore, SearchPath};

pub(super) use run::{run, Pool};

#[cfg(test)]
mod hour_tests;
#[cfg(test)]
mod tests;
