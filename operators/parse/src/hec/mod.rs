//! Splunk HTTP Event Collector bodies: cutting requests into records and normalising them.
//!
//! A `/services/collector/event` body is a run of JSON envelopes, back to back or separated by
//! whitespace. [`split_events`] finds each envelope's byte range and validates it cheaply, with
//! Splunk's error codes, so a source can refuse the whole request before enqueueing anything;
//! [`normalise_event`] later turns one envelope into an [`Event`](securewatch_schemas::Event).
//! A `/services/collector/raw` body is one event per line: [`split_raw`] and [`normalise_raw`].
//!
//! Event ids are `EventId::from_parts(["hec", token name, channel or "", index in request,
//! record bytes, T])`. `T` is empty when the sender supplied the event time (the envelope's
//! `time`, or `?time=` on raw) and the receive time in microseconds otherwise: a client that
//! retries a request carrying its own times gets the same ids (duplicates collapse), while
//! identical time-less events sent at different moments are never merged.

mod epoch;
mod normalise;
mod split;

pub use epoch::parse_epoch_seconds;
pub use normalise::{normalise_event, normalise_raw};
pub use split::{split_events, split_raw, HecBodyError, HecBodyErrorKind};

#[cfg(test)]
mod tests;
