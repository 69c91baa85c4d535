//! hec parser (in progress).
use crate::{HecMeta, ParseError, RawRecord};
use securewatch_schemas::Event;
/// Placeholder until the parser lands.
pub fn normalise_event(_r: &RawRecord, _m: &HecMeta, _i: u32) -> Result<Event, ParseError> { unimplemented!() }
/// Placeholder until the parser lands.
pub fn normalise_raw(_r: &RawRecord, _m: &HecMeta, _i: u32) -> Event { unimplemented!() }
