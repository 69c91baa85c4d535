//! Names of the metrics the dataflow operators record (the binary exports them).

/// Counter: records into / out of an operator, labelled `operator` and `direction`.
pub const OPERATOR_RECORDS: &str = "securewatch_dataflow_records_total";
