//! Names of the metrics the dataflow operators record (the binary exports them).

/// Counter: records into / out of an operator, labelled `operator` and `direction`.
pub const OPERATOR_RECORDS: &str = "securewatch_dataflow_records_total";
/// Counter: detection-rule matches a correlation did not use, by `outcome` (`late`, `skipped`).
pub const CORRELATION_MATCHES: &str = "securewatch_correlation_matches_total";
