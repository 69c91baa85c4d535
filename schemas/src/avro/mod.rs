//! Avro encoding of [`Event`] in the Confluent wire format (magic byte, schema id, datum).

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::types::Value;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use chrono::{DateTime, Utc};

use crate::{Alert, AlertLevel, Event, EventId, FieldValue, Fields, Severity, Source, SourceKind, Tenant};

/// The event schema as shipped in `schemas/avro/event.avsc`.
pub const EVENT_SCHEMA_JSON: &str = include_str!("../../avro/event.avsc");
/// The alert schema as shipped in `schemas/avro/alert.avsc`.
pub const ALERT_SCHEMA_JSON: &str = include_str!("../../avro/alert.avsc");
/// The raw-record schema of the Kafka bus as shipped in `schemas/avro/raw_record.avsc`.
pub const RAW_RECORD_SCHEMA_JSON: &str = include_str!("../../avro/raw_record.avsc");
/// The Confluent wire format's first byte.
pub const MAGIC_BYTE: u8 = 0;

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// Fewer bytes than the wire format's header.
    #[error("record is {0} bytes, shorter than the 5-byte Confluent header")]
    TooShort(usize),
    /// The first byte is not the Confluent magic byte.
    #[error("magic byte is {0}, expected 0 (Confluent wire format)")]
    BadMagic(u8),
    /// The header names another schema.
    #[error("schema id {found} does not match the expected {expected}")]
    SchemaMismatch {
        /// The schema id this codec reads.
        expected: u32,
        /// The id in the record.
        found: u32,
    },
    /// The Avro library refused the datum.
    #[error("avro: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    /// A field's value does not fit the Rust type.
    #[error("field {field}: {reason}")]
    Shape {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<apache_avro::Error> for AvroError {
    fn from(error: apache_avro::Error) -> Self {
        AvroError::Avro(Box::new(error))
    }
}

/// The previous version of a schema: the shipped one without its last field, `tenant`
/// (version 1 had no tenants). Writers always use the current schema; readers use this one as
/// the writer schema of records that end before the tenant (see [`read_evolving`]).
fn without_tenant(schema_json: &str) -> Schema {
    let mut json: serde_json::Value = serde_json::from_str(schema_json).expect("shipped schemas are JSON");
    let fields = json["fields"].as_array_mut().expect("shipped schemas are records");
    let last = fields.pop().expect("shipped schemas have fields");
    assert_eq!(last["name"], "tenant", "the tenant field is the last field");
    Schema::parse(&json).expect("the previous schema version is valid")
}

/// Reads one datum written with the current `schema`, or with its previous version (a record
/// from before tenants, which then reads as the `default` tenant by Avro schema resolution).
///
/// Avro binary data does not say which schema wrote it and a schema id without a registry
/// stays the same across versions, so the reader tries the current schema first: a
/// version-1 record ends where the tenant would start, which makes that read fail, and the
/// second read resolves it with the previous schema as writer and the current one as reader.
pub fn read_evolving(schema: &Schema, previous: &Schema, datum: &[u8]) -> Result<Value, AvroError> {
    let mut cursor = datum;
    let current = GenericDatumReader::builder(schema).build()?.read_value(&mut cursor);
    match current {
        Ok(value) if cursor.is_empty() => Ok(value),
        _ => {
            let mut cursor = datum;
            let reader = GenericDatumReader::builder(previous).reader_schema(schema).build()?;
            let value = reader.read_value(&mut cursor)?;
            if !cursor.is_empty() {
                return Err(shape("record", format!("{} bytes left after the datum", cursor.len())));
            }
            Ok(value)
        }
    }
}

/// The event schema before the `tenant` field (parsed once).
pub fn event_schema_v1() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| without_tenant(EVENT_SCHEMA_JSON))
}

/// The alert schema before the `tenant` field (parsed once).
pub fn alert_schema_v1() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| without_tenant(ALERT_SCHEMA_JSON))
}

/// The raw-record schema before the `tenant` field (parsed once).
pub fn raw_record_schema_v1() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| without_tenant(RAW_RECORD_SCHEMA_JSON))
}

/// The parsed event schema (parsed once).
pub fn event_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(EVENT_SCHEMA_JSON).expect("event.avsc is valid"))
}

/// The parsed alert schema (parsed once).
pub fn alert_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(ALERT_SCHEMA_JSON).expect("alert.avsc is valid"))
}

/// The parsed raw-record schema (parsed once).
pub fn raw_record_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(RAW_RECORD_SCHEMA_JSON).expect("raw_record.avsc is valid"))
}

/// Encodes and decodes events with a fixed writer schema and its registry id.
#[derive(Clone, Debug)]
pub struct EventCodec {
    schema_id: u32,
}

impl EventCodec {
    /// A codec that stamps `schema_id` (the registry id, or 1 without a registry).
    pub fn new(schema_id: u32) -> Self {
        EventCodec { schema_id }
    }

    /// Encodes `event` as magic byte + big-endian schema id + Avro binary datum.
    pub fn encode(&self, event: &Event) -> Result<Vec<u8>, AvroError> {
        let mut out = Vec::with_capacity(256);
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&self.schema_id.to_be_bytes());
        write_datum(event_schema(), &event_to_value(event), &mut out)?;
        Ok(out)
    }

    /// Decodes a record written with this codec's schema or its previous version (which
    /// reads as the `default` tenant).
    pub fn decode(&self, bytes: &[u8]) -> Result<Event, AvroError> {
        let payload = strip_header(bytes, self.schema_id)?;
        value_to_event(read_evolving(event_schema(), event_schema_v1(), payload)?)
    }

    /// Decodes a record written with `writer` schema, resolved to `reader` when given
    /// (Avro schema evolution: new fields take their defaults, removed ones are skipped).
    pub fn decode_with(
        &self,
        bytes: &[u8],
        writer: &Schema,
        reader: Option<&Schema>,
    ) -> Result<Event, AvroError> {
        let payload = strip_header(bytes, self.schema_id)?;
        let mut cursor = payload;
        let datum_reader = match reader {
            Some(reader) => GenericDatumReader::builder(writer).reader_schema(reader).build()?,
            None => GenericDatumReader::builder(writer).build()?,
        };
        value_to_event(datum_reader.read_value(&mut cursor)?)
    }
}

/// Appends the Avro binary encoding of `value` (validated against `schema`) to `out`.
pub fn write_datum(schema: &Schema, value: &Value, out: &mut Vec<u8>) -> Result<(), AvroError> {
    GenericDatumWriter::builder(schema).build()?.write_value_ref(out, value)?;
    Ok(())
}

/// Checks the Confluent header and returns the datum after it.
pub fn strip_header(bytes: &[u8], expected_id: u32) -> Result<&[u8], AvroError> {
    if bytes.len() < 5 {
        return Err(AvroError::TooShort(bytes.len()));
    }
    if bytes[0] != MAGIC_BYTE {
        return Err(AvroError::BadMagic(bytes[0]));
    }
    let found = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if found != expected_id {
        return Err(AvroError::SchemaMismatch { expected: expected_id, found });
    }
    Ok(&bytes[5..])
}

fn optional_string(value: &Option<String>) -> Value {
    match value {
        Some(text) => Value::Union(1, Box::new(Value::String(text.clone()))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

fn field_to_value(field: &FieldValue) -> Value {
    let (index, inner) = match field {
        FieldValue::Null => (0, Value::Null),
        FieldValue::Bool(flag) => (1, Value::Boolean(*flag)),
        FieldValue::Int(int) => (2, Value::Long(*int)),
        FieldValue::Float(float) => (3, Value::Double(*float)),
        FieldValue::Str(text) => (4, Value::String(text.clone())),
        FieldValue::List(items) => {
            (5, Value::Array(items.iter().cloned().map(Value::String).collect()))
        }
    };
    Value::Union(index, Box::new(inner))
}

/// Converts an event to the Avro value of `event.avsc`.
pub fn event_to_value(event: &Event) -> Value {
    let kind_index = SourceKind::ALL.iter().position(|kind| *kind == event.source.kind);
    let fields: HashMap<String, Value> =
        event.fields.iter().map(|(key, field)| (key.clone(), field_to_value(field))).collect();
    Value::Record(vec![
        ("id".into(), Value::Fixed(16, event.id.to_bytes().to_vec())),
        ("time".into(), Value::TimestampMicros(event.time.timestamp_micros())),
        ("received".into(), Value::TimestampMicros(event.received.timestamp_micros())),
        (
            "source".into(),
            Value::Record(vec![
                (
                    "kind".into(),
                    Value::Enum(kind_index.unwrap_or(0) as u32, event.source.kind.as_str().into()),
                ),
                ("name".into(), Value::String(event.source.name.clone())),
                ("peer".into(), optional_string(&event.source.peer)),
            ]),
        ),
        ("host".into(), optional_string(&event.host)),
        ("severity".into(), Value::Int(i32::from(event.severity.code()))),
        ("category".into(), optional_string(&event.category)),
        ("message".into(), Value::String(event.message.clone())),
        ("fields".into(), Value::Map(fields)),
        ("raw".into(), optional_string(&event.raw)),
        ("tenant".into(), Value::String(event.tenant.to_string())),
    ])
}

fn shape(field: &'static str, reason: impl Into<String>) -> AvroError {
    AvroError::Shape { field, reason: reason.into() }
}

fn take_string(field: &'static str, value: Value) -> Result<String, AvroError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(shape(field, format!("expected string, got {other:?}"))),
    }
}

fn take_optional_string(field: &'static str, value: Value) -> Result<Option<String>, AvroError> {
    match value {
        Value::Union(_, inner) => match *inner {
            Value::Null => Ok(None),
            other => take_string(field, other).map(Some),
        },
        Value::Null => Ok(None),
        other => take_string(field, other).map(Some),
    }
}

fn take_time(field: &'static str, value: Value) -> Result<DateTime<Utc>, AvroError> {
    let micros = match value {
        Value::TimestampMicros(micros) | Value::Long(micros) => micros,
        other => return Err(shape(field, format!("expected timestamp-micros, got {other:?}"))),
    };
    DateTime::from_timestamp_micros(micros).ok_or_else(|| shape(field, "timestamp out of range"))
}

fn value_to_field(value: Value) -> Result<FieldValue, AvroError> {
    let inner = match value {
        Value::Union(_, inner) => *inner,
        other => other,
    };
    Ok(match inner {
        Value::Null => FieldValue::Null,
        Value::Boolean(flag) => FieldValue::Bool(flag),
        Value::Long(int) => FieldValue::Int(int),
        Value::Int(int) => FieldValue::Int(i64::from(int)),
        Value::Double(float) => FieldValue::Float(float),
        Value::String(text) => FieldValue::Str(text),
        Value::Array(items) => FieldValue::List(
            items.into_iter().map(|item| take_string("fields[]", item)).collect::<Result<_, _>>()?,
        ),
        other => return Err(shape("fields", format!("unsupported value {other:?}"))),
    })
}

/// Converts an Avro value of `event.avsc` (or a compatible reader schema) back to an event.
pub fn value_to_event(value: Value) -> Result<Event, AvroError> {
    let Value::Record(record) = value else {
        return Err(shape("event", "expected a record"));
    };
    let mut id = None;
    let (mut time, mut received, mut source) = (None, None, None);
    let (mut host, mut severity, mut category, mut message) = (None, None, None, None);
    let (mut fields, mut raw, mut tenant) = (Fields::new(), None, Tenant::default());
    for (name, value) in record {
        match name.as_str() {
            "id" => match value {
                Value::Fixed(16, bytes) => {
                    let array: [u8; 16] = bytes.try_into().expect("fixed(16) has 16 bytes");
                    id = Some(EventId::from_bytes(array));
                }
                other => return Err(shape("id", format!("expected fixed(16), got {other:?}"))),
            },
            "time" => time = Some(take_time("time", value)?),
            "received" => received = Some(take_time("received", value)?),
            "source" => source = Some(value_to_source(value)?),
            "host" => host = take_optional_string("host", value)?,
            "severity" => {
                severity = match value {
                    Value::Int(code) => Some(Severity::from_code(code.clamp(0, 7) as u8)),
                    other => return Err(shape("severity", format!("expected int, got {other:?}"))),
                }
            }
            "category" => category = take_optional_string("category", value)?,
            "message" => message = Some(take_string("message", value)?),
            "fields" => {
                let Value::Map(map) = value else { return Err(shape("fields", "expected a map")) };
                for (key, inner) in map {
                    fields.insert(key, value_to_field(inner)?);
                }
            }
            "raw" => raw = take_optional_string("raw", value)?,
            "tenant" => tenant = Tenant::from_stored(&take_string("tenant", value)?),
            _ => {} // fields added by a newer writer that this reader does not know
        }
    }
    Ok(Event {
        id: id.ok_or_else(|| shape("id", "missing"))?,
        time: time.ok_or_else(|| shape("time", "missing"))?,
        received: received.ok_or_else(|| shape("received", "missing"))?,
        source: source.ok_or_else(|| shape("source", "missing"))?,
        tenant,
        host,
        severity: severity.ok_or_else(|| shape("severity", "missing"))?,
        category,
        message: message.ok_or_else(|| shape("message", "missing"))?,
        fields,
        raw,
    })
}

fn value_to_source(value: Value) -> Result<Source, AvroError> {
    let Value::Record(record) = value else { return Err(shape("source", "expected a record")) };
    let (mut kind, mut name, mut peer) = (None, None, None);
    for (field, value) in record {
        match field.as_str() {
            "kind" => match value {
                Value::Enum(_, symbol) => kind = SourceKind::parse(&symbol),
                other => return Err(shape("source.kind", format!("expected enum, got {other:?}"))),
            },
            "name" => name = Some(take_string("source.name", value)?),
            "peer" => peer = take_optional_string("source.peer", value)?,
            _ => {}
        }
    }
    Ok(Source {
        kind: kind.ok_or_else(|| shape("source.kind", "missing or unknown symbol"))?,
        name: name.ok_or_else(|| shape("source.name", "missing"))?,
        peer,
    })
}

/// Encodes and decodes alerts (`alert.avsc`) in the Confluent wire format. A retraction (an
/// alert that late data invalidated) is the same record with `retracted = true`.
#[derive(Clone, Debug)]
pub struct AlertCodec {
    schema_id: u32,
}

impl AlertCodec {
    /// A codec that stamps `schema_id` (the registry id, or 1 without a registry).
    pub fn new(schema_id: u32) -> Self {
        AlertCodec { schema_id }
    }

    /// Encodes `alert` (and whether it is a retraction) as header + Avro binary datum.
    pub fn encode(&self, alert: &Alert, retracted: bool) -> Result<Vec<u8>, AvroError> {
        let mut out = Vec::with_capacity(256);
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&self.schema_id.to_be_bytes());
        write_datum(alert_schema(), &alert_to_value(alert, retracted), &mut out)?;
        Ok(out)
    }

    /// Decodes a record written with this codec's schema or its previous version (which
    /// reads as the `default` tenant): the alert and its `retracted` flag.
    pub fn decode(&self, bytes: &[u8]) -> Result<(Alert, bool), AvroError> {
        let payload = strip_header(bytes, self.schema_id)?;
        value_to_alert(read_evolving(alert_schema(), alert_schema_v1(), payload)?)
    }
}

fn millis_to_micros(field: &'static str, ms: u64) -> Result<Value, AvroError> {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| ms.checked_mul(1_000))
        .map(Value::TimestampMicros)
        .ok_or_else(|| shape(field, format!("{ms} ms does not fit timestamp-micros")))
}

fn micros_to_millis(field: &'static str, value: Value) -> Result<u64, AvroError> {
    let micros = match value {
        Value::TimestampMicros(micros) | Value::Long(micros) => micros,
        other => return Err(shape(field, format!("expected timestamp-micros, got {other:?}"))),
    };
    u64::try_from(micros / 1_000).map_err(|_| shape(field, "negative timestamp"))
}

fn fixed_id(field: &'static str, value: Value) -> Result<EventId, AvroError> {
    match value {
        Value::Fixed(16, bytes) => {
            let array: [u8; 16] = bytes.try_into().expect("fixed(16) has 16 bytes");
            Ok(EventId::from_bytes(array))
        }
        other => Err(shape(field, format!("expected fixed(16), got {other:?}"))),
    }
}

/// Converts an alert to the Avro value of `alert.avsc`. Times must be representable in
/// microseconds as an `i64` (years up to 294 247).
pub fn alert_to_value(alert: &Alert, retracted: bool) -> Value {
    let time = |field, ms| millis_to_micros(field, ms).unwrap_or(Value::TimestampMicros(i64::MAX));
    let level = match alert.level {
        Some(level) => {
            let index = AlertLevel::ALL.iter().position(|known| *known == level).unwrap_or(0);
            Value::Union(1, Box::new(Value::Enum(index as u32, level.as_str().into())))
        }
        None => Value::Union(0, Box::new(Value::Null)),
    };
    Value::Record(vec![
        ("id".into(), Value::Fixed(16, alert.id.to_bytes().to_vec())),
        ("rule_id".into(), Value::String(alert.rule_id.clone())),
        ("rule_title".into(), Value::String(alert.rule_title.clone())),
        ("kind".into(), Value::String(alert.kind.clone())),
        ("level".into(), level),
        ("tags".into(), Value::Array(alert.tags.iter().cloned().map(Value::String).collect())),
        (
            "group_key".into(),
            Value::Map(alert.group_key.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
        ),
        ("window_start".into(), time("window_start", alert.window_start_ms)),
        ("window_end".into(), time("window_end", alert.window_end_ms)),
        ("fired_at".into(), time("fired_at", alert.fired_at_ms)),
        ("first_seen".into(), time("first_seen", alert.first_seen_ms)),
        ("last_seen".into(), time("last_seen", alert.last_seen_ms)),
        (
            "event_ids".into(),
            Value::Array(alert.event_ids.iter().map(|id| Value::Fixed(16, id.to_bytes().to_vec())).collect()),
        ),
        ("retracted".into(), Value::Boolean(retracted)),
        ("tenant".into(), Value::String(alert.tenant.to_string())),
    ])
}

/// Converts an Avro value of `alert.avsc` back to an alert and its `retracted` flag.
pub fn value_to_alert(value: Value) -> Result<(Alert, bool), AvroError> {
    let Value::Record(record) = value else {
        return Err(shape("alert", "expected a record"));
    };
    let mut alert = Alert {
        id: EventId(0),
        tenant: Tenant::default(),
        rule_id: String::new(),
        rule_title: String::new(),
        kind: "rule".into(),
        level: None,
        tags: Vec::new(),
        group_key: Default::default(),
        window_start_ms: 0,
        window_end_ms: 0,
        fired_at_ms: 0,
        first_seen_ms: 0,
        last_seen_ms: 0,
        event_ids: Vec::new(),
    };
    let (mut has_id, mut retracted) = (false, false);
    for (name, value) in record {
        match name.as_str() {
            "id" => {
                alert.id = fixed_id("id", value)?;
                has_id = true;
            }
            "rule_id" => alert.rule_id = take_string("rule_id", value)?,
            "rule_title" => alert.rule_title = take_string("rule_title", value)?,
            "kind" => alert.kind = take_string("kind", value)?,
            "level" => {
                let inner = match value {
                    Value::Union(_, inner) => *inner,
                    other => other,
                };
                alert.level = match inner {
                    Value::Null => None,
                    Value::Enum(_, symbol) => Some(
                        AlertLevel::parse(&symbol).ok_or_else(|| shape("level", format!("unknown {symbol}")))?,
                    ),
                    other => return Err(shape("level", format!("expected enum, got {other:?}"))),
                }
            }
            "tags" => {
                let Value::Array(items) = value else { return Err(shape("tags", "expected an array")) };
                alert.tags = items.into_iter().map(|item| take_string("tags[]", item)).collect::<Result<_, _>>()?;
            }
            "group_key" => {
                let Value::Map(map) = value else { return Err(shape("group_key", "expected a map")) };
                for (key, inner) in map {
                    alert.group_key.insert(key, take_string("group_key[]", inner)?);
                }
            }
            "window_start" => alert.window_start_ms = micros_to_millis("window_start", value)?,
            "window_end" => alert.window_end_ms = micros_to_millis("window_end", value)?,
            "fired_at" => alert.fired_at_ms = micros_to_millis("fired_at", value)?,
            "first_seen" => alert.first_seen_ms = micros_to_millis("first_seen", value)?,
            "last_seen" => alert.last_seen_ms = micros_to_millis("last_seen", value)?,
            "event_ids" => {
                let Value::Array(items) = value else { return Err(shape("event_ids", "expected an array")) };
                alert.event_ids = items.into_iter().map(|item| fixed_id("event_ids[]", item)).collect::<Result<_, _>>()?;
            }
            "tenant" => alert.tenant = Tenant::from_stored(&take_string("tenant", value)?),
            "retracted" => {
                retracted = match value {
                    Value::Boolean(flag) => flag,
                    other => return Err(shape("retracted", format!("expected boolean, got {other:?}"))),
                }
            }
            _ => {} // fields added by a newer writer
        }
    }
    if !has_id {
        return Err(shape("id", "missing"));
    }
    Ok((alert, retracted))
}

#[cfg(test)]
mod tests;
