//! Splunk HTTP Event Collector records: normalising one envelope or raw line into an event.
//!
//! The HEC source cuts a `/services/collector/event` body into one record per JSON envelope
//! (validated there, with Splunk's error codes); [`normalise_event`] turns one envelope into an
//! [`Event`](securewatch_schemas::Event). A `/services/collector/raw` body is one record per
//! line: [`normalise_raw`].
//!
//! Event ids are `EventId::from_parts(["hec", token name, channel or "", index in request,
//! record bytes, T])`. `T` is empty when the sender supplied the event time (the envelope's
//! `time`, or `?time=` on raw) and the receive time in microseconds otherwise: a client that
//! retries a request carrying its own times gets the same ids (duplicates collapse), while
//! identical time-less events sent at different moments are never merged.

mod normalise;

pub use normalise::{normalise_event, normalise_raw};

#[cfg(test)]
mod tests;
