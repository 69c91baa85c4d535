//! syslog parser (in progress).
use crate::RawRecord;
use securewatch_schemas::Event;
/// Placeholder until the parser lands.
pub fn normalise(_record: &RawRecord) -> Event { unimplemented!() }
