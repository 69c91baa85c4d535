//! The raw-record envelope of a Kafka message value (`format = "raw"`).
//!
//! The fields of the shared [`crate::bus::layout`], framed one after another after a two-byte
//! magic `SW` (0x53 0x57):
//!
//! ```text
//! "SW" ( name: 1 byte, ASCII letter | length: u32 big-endian | value: length bytes )*
//! ```
//!
//! Field `v` (layout version) comes first. A value that does not start with the magic, whose
//! frames overrun it, or that repeats a field is not a record ([`DecodeError::Envelope`]).
//! The magic differs from the Confluent wire format's first byte (0), so a raw-format reader
//! names an Avro value as such instead of misreading it.

use securewatch_schemas::RawRecord;

use crate::bus::layout::{for_each_field, DecodeError, Decoder};

/// The first two bytes of every envelope.
pub const MAGIC: &[u8; 2] = b"SW";

/// Appends the envelope of `record` to `out`.
pub fn encode_into(record: &RawRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    for_each_field(record, |name, value| {
        out.push(name.as_bytes()[0]);
        // Bodies are bounded far below 4 GiB by every source's size cap.
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    });
}

/// The envelope of `record`.
pub fn encode(record: &RawRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.body.len() + 96);
    encode_into(record, &mut out);
    out
}

/// The fields of an envelope, in order.
fn frames(value: &[u8]) -> Result<Vec<(u8, &[u8])>, DecodeError> {
    let broken = |reason: String| DecodeError::Envelope(reason);
    let mut rest = value.strip_prefix(MAGIC).ok_or_else(|| match value.first() {
        Some(0) => broken("starts with byte 0: an Avro value in the Confluent wire format?".to_string()),
        _ => broken("no `SW` magic".to_string()),
    })?;
    let mut fields: Vec<(u8, &[u8])> = Vec::with_capacity(10);
    while let Some((&name, after)) = rest.split_first() {
        let (length, after) = after
            .split_first_chunk::<4>()
            .ok_or_else(|| broken(format!("field `{}` has no length", name as char)))?;
        let length = u32::from_be_bytes(*length) as usize;
        if after.len() < length {
            return Err(broken(format!("field `{}` overruns the value", name as char)));
        }
        if fields.iter().any(|(seen, _)| *seen == name) {
            return Err(broken(format!("field `{}` appears twice", name as char)));
        }
        let (field, after) = after.split_at(length);
        fields.push((name, field));
        rest = after;
    }
    Ok(fields)
}

impl Decoder {
    /// The record of one raw-format message value.
    pub fn decode_envelope(&mut self, value: &[u8]) -> Result<RawRecord, DecodeError> {
        let fields = frames(value)?;
        self.decode_fields(|name| {
            let name = name.as_bytes()[0];
            Ok(fields.iter().find(|(seen, _)| *seen == name).map(|(_, field)| *field))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::layout::tests::sample_records;

    #[test]
    fn every_kind_of_record_round_trips_exactly() {
        let mut decoder = Decoder::default();
        for record in sample_records() {
            let value = encode(&record);
            assert_eq!(&value[..2], MAGIC);
            assert_eq!(decoder.decode_envelope(&value).unwrap(), record);
        }
    }

    #[test]
    fn broken_envelopes_are_rejected_with_a_reason() {
        let mut decoder = Decoder::default();
        let value = encode(&sample_records()[0]);
        for cut in [3, 7, value.len() - 1] {
            let error = decoder.decode_envelope(&value[..cut]).unwrap_err();
            assert_eq!(error.reason(), "bad_envelope", "cut at {cut}: {error}");
        }
        assert!(decoder.decode_envelope(b"{\"json\":1}").unwrap_err().to_string().contains("magic"));
        assert!(decoder.decode_envelope(&[0, 0, 0, 0, 1, 2]).unwrap_err().to_string().contains("Avro"));
        let mut twice = value.clone();
        twice.extend_from_slice(&[b'p', 0, 0, 0, 1, b'x', b'p', 0, 0, 0, 1, b'y']);
        assert!(decoder.decode_envelope(&twice).unwrap_err().to_string().contains("twice"));
        // A record without its body field.
        assert_eq!(decoder.decode_envelope(b"SWv\0\0\0\x011"), Err(DecodeError::Missing("k")));
    }
}
