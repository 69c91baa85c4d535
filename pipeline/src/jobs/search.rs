//! The search kind of job: a query compiled for the store that answers it, run over the
//! submission's time range and tenants.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use securewatch_connectors::sinks::read::search::CompiledSearch;
use securewatch_connectors::sinks::StoreReader;

use super::{JobKind, JobOutput};

/// A search job.
pub struct SearchJob {
    /// The reader of the stores.
    pub reader: StoreReader,
    /// The compiled query (tenant scope and time range included).
    pub compiled: CompiledSearch,
    /// Time range start.
    pub from: DateTime<Utc>,
    /// Time range end (exclusive).
    pub to: DateTime<Utc>,
}

/// The path's name as the status shows it.
pub fn path_name(compiled: &CompiledSearch) -> String {
    serde_json::to_value(compiled.path).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

impl JobKind for SearchJob {
    fn kind(&self) -> &'static str {
        "search"
    }

    fn columns(&self) -> Vec<String> {
        self.compiled.columns.iter().map(|(name, _)| name.clone()).collect()
    }

    fn path(&self) -> String {
        path_name(&self.compiled)
    }

    fn run<'a>(&'a self, output: &'a mut JobOutput) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.reader.search(&self.compiled, self.from, self.to, output).await.map(|_| ()).map_err(|error| error.to_string())
        })
    }
}
