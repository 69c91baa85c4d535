//! wazuh parser (in progress).
use crate::{ParseError, RawRecord};
use securewatch_schemas::Event;
/// Placeholder until the parser lands.
pub fn normalise(_r: &RawRecord) -> Result<Event, ParseError> { unimplemented!() }
