//! Raw records as Avro in the Confluent wire format (`format = "avro"`): magic byte 0, the
//! configured schema id as 4 big-endian bytes, then the Avro binary datum of
//! `schemas/avro/raw_record.avsc`. No registry is consulted; readers expect the same id.

use std::sync::Arc;

use apache_avro::types::Value;
use chrono::{DateTime, Utc};
use securewatch_schemas::{HecDefaults, HecMeta, RawRecord, RecordMeta};
use securewatch_schemas::avro::{
    raw_record_schema, raw_record_schema_v1, read_evolving, strip_header, write_datum, AvroError, MAGIC_BYTE,
};
use securewatch_schemas::SourceKind;

use crate::bus::layout::{DecodeError, Decoder};

fn null() -> Value {
    Value::Union(0, Box::new(Value::Null))
}

fn optional_string(value: Option<&str>) -> Value {
    value.map_or_else(null, |text| Value::Union(1, Box::new(Value::String(text.to_string()))))
}

fn time_value(time: &DateTime<Utc>) -> Value {
    Value::Record(vec![
        ("seconds".into(), Value::Long(time.timestamp())),
        // Below 2e9 (leap seconds included), so it fits an int.
        ("nanos".into(), Value::Int(time.timestamp_subsec_nanos() as i32)),
    ])
}

fn hec_value(meta: &HecMeta, event: bool, index: u32) -> Value {
    let defaults = &meta.defaults;
    let mode = if event { Value::Enum(0, "event".into()) } else { Value::Enum(1, "raw".into()) };
    let time = defaults.time.as_ref().map_or_else(null, |time| Value::Union(1, Box::new(time_value(time))));
    Value::Union(
        1,
        Box::new(Value::Record(vec![
            ("mode".into(), mode),
            ("index".into(), Value::Long(i64::from(index))),
            ("token_name".into(), Value::String(meta.token_name.clone())),
            ("channel".into(), optional_string(meta.channel.as_deref())),
            ("host".into(), optional_string(defaults.host.as_deref())),
            ("source".into(), optional_string(defaults.source.as_deref())),
            ("sourcetype".into(), optional_string(defaults.sourcetype.as_deref())),
            ("index_name".into(), optional_string(defaults.index.as_deref())),
            ("time".into(), time),
        ])),
    )
}

fn record_value(record: &RawRecord) -> Value {
    let meta = match &record.meta {
        RecordMeta::None => null(),
        RecordMeta::HecEvent { meta, index } => hec_value(meta, true, *index),
        RecordMeta::HecRaw { meta, index } => hec_value(meta, false, *index),
        RecordMeta::TlsPeer { identity } => Value::Union(
            3,
            Box::new(Value::Record(vec![("peer_identity".into(), Value::String(identity.to_string()))])),
        ),
        RecordMeta::File { identity, offset } => Value::Union(
            2,
            Box::new(Value::Record(vec![
                ("identity".into(), Value::String(identity.clone())),
                // Two's complement: u64 offsets above i64::MAX come back exactly.
                ("offset".into(), Value::Long(*offset as i64)),
            ])),
        ),
    };
    Value::Record(vec![
        ("kind".into(), Value::String(record.kind.as_str().to_string())),
        ("source_name".into(), Value::String(record.source_name.to_string())),
        ("peer".into(), optional_string(record.peer.as_deref())),
        ("received".into(), time_value(&record.received)),
        ("body".into(), Value::Bytes(record.body.clone())),
        ("meta".into(), meta),
        ("tenant".into(), Value::String(record.tenant.to_string())),
    ])
}

/// Appends `record` in the Confluent wire format with `schema_id` to `out`.
pub fn encode_into(record: &RawRecord, schema_id: u32, out: &mut Vec<u8>) -> Result<(), AvroError> {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    write_datum(raw_record_schema(), &record_value(record), out)
}

fn shape(field: &'static str, value: &Value) -> DecodeError {
    DecodeError::Avro(format!("field {field}: unexpected {value:?}"))
}

/// The fields of a record value, by name.
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn of(field: &'static str, value: Value) -> Result<Fields, DecodeError> {
        match value {
            Value::Record(fields) => Ok(Fields(fields)),
            other => Err(shape(field, &other)),
        }
    }

    fn take(&mut self, name: &'static str) -> Result<Value, DecodeError> {
        let at = self.0.iter().position(|(seen, _)| seen == name).ok_or(DecodeError::Missing(name))?;
        Ok(std::mem::replace(&mut self.0[at].1, Value::Null))
    }

    fn string(&mut self, name: &'static str) -> Result<String, DecodeError> {
        match self.take(name)? {
            Value::String(text) => Ok(text),
            other => Err(shape(name, &other)),
        }
    }

    fn long(&mut self, name: &'static str) -> Result<i64, DecodeError> {
        match self.take(name)? {
            Value::Long(number) => Ok(number),
            other => Err(shape(name, &other)),
        }
    }

    /// The value of a `["null", T]` union, `None` for null.
    fn optional(&mut self, name: &'static str) -> Result<Option<Value>, DecodeError> {
        match self.take(name)? {
            Value::Union(_, inner) if *inner == Value::Null => Ok(None),
            Value::Union(_, inner) => Ok(Some(*inner)),
            other => Err(shape(name, &other)),
        }
    }

    fn optional_string(&mut self, name: &'static str) -> Result<Option<String>, DecodeError> {
        match self.optional(name)? {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(shape(name, &other)),
        }
    }
}

fn time(field: &'static str, value: Value) -> Result<DateTime<Utc>, DecodeError> {
    let mut fields = Fields::of(field, value)?;
    let seconds = fields.long("seconds")?;
    let nanos = match fields.take("nanos")? {
        Value::Int(nanos) => u32::try_from(nanos).map_err(|_| shape("nanos", &Value::Int(nanos)))?,
        other => return Err(shape("nanos", &other)),
    };
    DateTime::from_timestamp(seconds, nanos)
        .ok_or_else(|| DecodeError::Invalid { field, reason: format!("{seconds}.{nanos:09} is out of range") })
}

fn hec_meta(mut fields: Fields) -> Result<(bool, u32, HecMeta), DecodeError> {
    let event = match fields.take("mode")? {
        Value::Enum(_, symbol) => symbol == "event",
        other => return Err(shape("mode", &other)),
    };
    let index = fields.long("index")?;
    let index = u32::try_from(index).map_err(|_| shape("index", &Value::Long(index)))?;
    let meta = HecMeta {
        token_name: fields.string("token_name")?,
        channel: fields.optional_string("channel")?,
        defaults: HecDefaults {
            host: fields.optional_string("host")?,
            source: fields.optional_string("source")?,
            sourcetype: fields.optional_string("sourcetype")?,
            index: fields.optional_string("index_name")?,
            time: fields.optional("time")?.map(|value| time("time", value)).transpose()?,
        },
    };
    Ok((event, index, meta))
}

impl Decoder {
    /// The record of one Avro-format message value written with `schema_id`, by the current
    /// schema or the one before tenants (such a record reads as the `default` tenant).
    pub fn decode_avro(&mut self, value: &[u8], schema_id: u32) -> Result<RawRecord, DecodeError> {
        let datum = strip_header(value, schema_id).map_err(|error| DecodeError::Avro(error.to_string()))?;
        let value = read_evolving(raw_record_schema(), raw_record_schema_v1(), datum)
            .map_err(|error| DecodeError::Avro(error.to_string()))?;
        let mut fields = Fields::of("record", value)?;
        let kind_text = fields.string("kind")?;
        let kind = SourceKind::parse(&kind_text)
            .ok_or_else(|| DecodeError::Invalid { field: "kind", reason: format!("unknown kind {kind_text:?}") })?;
        let source_name = self.shared_source_name(&fields.string("source_name")?);
        let peer = fields.optional_string("peer")?;
        let tenant = self.shared_tenant(&fields.string("tenant")?);
        let received = time("received", fields.take("received")?)?;
        let body = match fields.take("body")? {
            Value::Bytes(body) => body,
            other => return Err(shape("body", &other)),
        };
        let meta = match fields.optional("meta")? {
            None => RecordMeta::None,
            Some(Value::Record(meta)) if meta.iter().any(|(name, _)| name == "peer_identity") => {
                RecordMeta::TlsPeer { identity: Arc::from(Fields(meta).string("peer_identity")?) }
            }
            Some(Value::Record(meta)) if meta.iter().any(|(name, _)| name == "identity") => {
                let mut meta = Fields(meta);
                RecordMeta::File { identity: meta.string("identity")?, offset: meta.long("offset")? as u64 }
            }
            Some(Value::Record(meta)) => {
                let (event, index, meta) = hec_meta(Fields(meta))?;
                let meta = self.shared_hec_meta(meta);
                if event {
                    RecordMeta::HecEvent { meta, index }
                } else {
                    RecordMeta::HecRaw { meta, index }
                }
            }
            Some(other) => return Err(shape("meta", &other)),
        };
        Ok(RawRecord { kind, source_name, tenant, peer, received, body, meta })
    }

    /// `meta` as a shared value: the previous record's when equal.
    fn shared_hec_meta(&mut self, meta: HecMeta) -> Arc<HecMeta> {
        let json = crate::bus::layout::encode_hec_meta(&meta);
        // The layout's JSON is the comparison key; decoding it back cannot fail.
        self.hec_meta(json.as_bytes()).unwrap_or_else(|_| Arc::new(meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::layout::tests::sample_records;

    #[test]
    fn every_kind_of_record_round_trips_exactly_in_the_confluent_wire_format() {
        let mut decoder = Decoder::default();
        for record in sample_records() {
            let mut value = Vec::new();
            encode_into(&record, 0x0102_0304, &mut value).unwrap();
            assert_eq!(&value[..5], &[0, 1, 2, 3, 4]);
            assert_eq!(decoder.decode_avro(&value, 0x0102_0304).unwrap(), record);
        }
    }

    /// A message a build before tenants wrote (schema without `tenant`, same schema id) still
    /// decodes, as the `default` tenant.
    #[test]
    fn records_written_before_tenants_read_as_the_default_tenant() {
        let mut decoder = Decoder::default();
        for record in sample_records() {
            let Value::Record(mut fields) = record_value(&record) else { unreachable!() };
            fields.retain(|(name, _)| name != "tenant");
            let mut value = vec![MAGIC_BYTE, 0, 0, 0, 5];
            write_datum(raw_record_schema_v1(), &Value::Record(fields), &mut value).unwrap();
            let decoded = decoder.decode_avro(&value, 5).unwrap();
            assert!(decoded.tenant.is_default());
            assert_eq!(decoded, RawRecord { tenant: Default::default(), ..record });
        }
    }

    #[test]
    fn wrong_ids_and_broken_data_are_rejected() {
        let mut decoder = Decoder::default();
        let mut value = Vec::new();
        encode_into(&sample_records()[2], 7, &mut value).unwrap();
        assert!(decoder.decode_avro(&value, 8).unwrap_err().to_string().contains("schema id"));
        assert_eq!(decoder.decode_avro(&value[..20], 7).unwrap_err().reason(), "bad_avro");
        assert_eq!(decoder.decode_avro(b"SW....", 7).unwrap_err().reason(), "bad_avro");
    }
}
