//! How a [`RawRecord`] is laid out as the fields of one stream entry: the shared layout of
//! [`crate::bus::layout`], one stream field per layout field, so `redis-cli XRANGE` stays
//! readable. Field values are binary strings; nothing is escaped.

use std::collections::HashMap;

use ::redis::Value;
use securewatch_schemas::RawRecord;

pub use crate::bus::layout::{DecodeError, Decoder, LAYOUT_VERSION};
use crate::bus::layout::for_each_field;

/// Appends the record's field/value pairs to an `XADD` command.
pub(crate) fn append_fields(command: &mut ::redis::Cmd, record: &RawRecord) {
    for_each_field(record, |name, value| {
        command.arg(name).arg(value);
    });
}

/// The field/value pairs of one record (for callers that build their own commands).
pub fn encode(record: &RawRecord) -> Vec<(&'static str, Vec<u8>)> {
    let mut fields = Vec::with_capacity(9);
    for_each_field(record, |name, value| fields.push((name, value.to_vec())));
    fields
}

fn field<'a>(fields: &'a HashMap<String, Value>, name: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::BulkString(bytes)) => Ok(Some(bytes)),
        Some(Value::SimpleString(text)) => Ok(Some(text.as_bytes())),
        Some(other) => Err(DecodeError::Invalid { field: name, reason: format!("unexpected reply type {other:?}") }),
    }
}

impl Decoder {
    /// The record of one entry's fields.
    pub fn decode(&mut self, fields: &HashMap<String, Value>) -> Result<RawRecord, DecodeError> {
        self.decode_fields(|name| field(fields, name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use securewatch_schemas::RecordMeta;

    use super::*;
    use crate::bus::layout::tests::sample_records;

    fn fields_of(record: &RawRecord) -> HashMap<String, Value> {
        encode(record).into_iter().map(|(name, value)| (name.to_string(), Value::BulkString(value))).collect()
    }

    #[test]
    fn every_kind_of_record_round_trips_exactly() {
        let mut decoder = Decoder::default();
        for record in sample_records() {
            assert_eq!(decoder.decode(&fields_of(&record)).unwrap(), record);
        }
    }

    #[test]
    fn consecutive_records_of_one_request_share_their_metadata() {
        let record = &sample_records()[1];
        let mut decoder = Decoder::default();
        let first = decoder.decode(&fields_of(record)).unwrap();
        let second = decoder.decode(&fields_of(record)).unwrap();
        let (RecordMeta::HecRaw { meta: a, .. }, RecordMeta::HecRaw { meta: b, .. }) = (&first.meta, &second.meta) else {
            panic!("not HEC raw records");
        };
        assert!(Arc::ptr_eq(a, b));
        assert!(Arc::ptr_eq(&first.source_name, &second.source_name));
    }

    #[test]
    fn entries_that_are_not_records_are_rejected_with_a_reason() {
        let mut fields = fields_of(&sample_records()[0]);
        let mut decoder = Decoder::default();
        fields.insert("v".into(), Value::BulkString(b"2".to_vec()));
        assert_eq!(decoder.decode(&fields), Err(DecodeError::Version("2".into())));
        fields.insert("v".into(), Value::BulkString(b"1".to_vec()));
        fields.insert("t".into(), Value::BulkString(b"1709287300.5".to_vec()));
        assert_eq!(decoder.decode(&fields).unwrap_err().reason(), "invalid_field");
        fields.remove("t");
        assert_eq!(decoder.decode(&fields), Err(DecodeError::Missing("t")));
        let mut foreign = HashMap::new();
        foreign.insert("message".to_string(), Value::BulkString(b"hello".to_vec()));
        assert_eq!(decoder.decode(&foreign), Err(DecodeError::Missing("v")));
    }
}
