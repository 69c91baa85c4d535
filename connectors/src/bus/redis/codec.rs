//! How a [`RawRecord`] is laid out as the fields of one stream entry.
//!
//! One entry per record, fields with one-letter names so `redis-cli XRANGE` stays readable:
//!
//! | field | value | present |
//! |---|---|---|
//! | `v` | layout version, `1` | always |
//! | `k` | source kind (`hec`, `syslog`, `wazuh`, …) | always |
//! | `s` | source name | always |
//! | `t` | receive time, `<unix seconds>.<nanoseconds, 9 digits>` (10 in a leap second) | always |
//! | `b` | body bytes, as received (binary safe) | always |
//! | `p` | peer (`ip:port` or file path) | when known |
//! | `m` | meta kind: `hec_event`, `hec_raw` or `file` | unless no meta |
//! | `i` | HEC: index in the request; file: byte offset | with `m` |
//! | `h` | HEC: request metadata as compact JSON (token name, channel, defaults) | HEC |
//! | `f` | file: identity (`dev:inode`) | file |
//!
//! Field values are binary strings, so the body needs no escaping and the layout round-trips
//! every record exactly. Readers reject an entry whose `v` they do not know.

use std::collections::HashMap;
use std::sync::Arc;

use ::redis::Value;
use chrono::{DateTime, Utc};
use securewatch_parse::{HecDefaults, HecMeta, RawRecord, RecordMeta};
use securewatch_schemas::SourceKind;
use serde::{Deserialize, Serialize};

/// The layout version written in field `v`.
pub const LAYOUT_VERSION: &str = "1";

/// Why an entry is not a record this build can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("layout version {0:?} is not supported")]
    Version(String),
}

impl DecodeError {
    /// A short label for metrics and dead letters.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Missing(_) => "missing_field",
            DecodeError::Invalid { .. } => "invalid_field",
            DecodeError::Version(_) => "unknown_version",
        }
    }
}

/// `secs.nnnnnnnnn`, exact for every `DateTime<Utc>` (leap-second nanoseconds included).
fn format_time(time: &DateTime<Utc>) -> String {
    format!("{}.{:09}", time.timestamp(), time.timestamp_subsec_nanos())
}

fn parse_time(field: &'static str, text: &str) -> Result<DateTime<Utc>, DecodeError> {
    let invalid = || DecodeError::Invalid { field, reason: format!("{text:?} is not <seconds>.<nanoseconds>") };
    let (secs, nanos) = text.split_once('.').ok_or_else(invalid)?;
    // Nine digits; ten during a leap second (chrono counts it as nanoseconds past one billion).
    if !(9..=10).contains(&nanos.len()) {
        return Err(invalid());
    }
    let secs: i64 = secs.parse().map_err(|_| invalid())?;
    let nanos: u32 = nanos.parse().map_err(|_| invalid())?;
    DateTime::from_timestamp(secs, nanos).ok_or_else(invalid)
}

/// The JSON of field `h`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HecMetaJson<'a> {
    #[serde(borrow)]
    token: std::borrow::Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    channel: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    host: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    source: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    sourcetype: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    index: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<String>,
}

fn hec_meta_json(meta: &HecMeta) -> String {
    fn borrowed(value: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
        value.as_deref().map(std::borrow::Cow::Borrowed)
    }
    let json = HecMetaJson {
        token: std::borrow::Cow::Borrowed(&meta.token_name),
        channel: borrowed(&meta.channel),
        host: borrowed(&meta.defaults.host),
        source: borrowed(&meta.defaults.source),
        sourcetype: borrowed(&meta.defaults.sourcetype),
        index: borrowed(&meta.defaults.index),
        time: meta.defaults.time.as_ref().map(format_time),
    };
    // Serialising strings and options into a String cannot fail.
    serde_json::to_string(&json).unwrap_or_default()
}

fn parse_hec_meta(bytes: &[u8]) -> Result<HecMeta, DecodeError> {
    let invalid = |reason: String| DecodeError::Invalid { field: "h", reason };
    let json: HecMetaJson<'_> = serde_json::from_slice(bytes).map_err(|error| invalid(error.to_string()))?;
    let owned = |value: Option<std::borrow::Cow<'_, str>>| value.map(|text| text.into_owned());
    Ok(HecMeta {
        token_name: json.token.into_owned(),
        channel: owned(json.channel),
        defaults: HecDefaults {
            host: owned(json.host),
            source: owned(json.source),
            sourcetype: owned(json.sourcetype),
            index: owned(json.index),
            time: json.time.map(|time| parse_time("h", &time)).transpose()?,
        },
    })
}

/// Calls `visit` with each field name and value of the record, in the order they are written.
fn for_each_field(record: &RawRecord, mut visit: impl FnMut(&'static str, &[u8])) {
    visit("v", LAYOUT_VERSION.as_bytes());
    visit("k", record.kind.as_str().as_bytes());
    visit("s", record.source_name.as_bytes());
    visit("t", format_time(&record.received).as_bytes());
    visit("b", &record.body);
    if let Some(peer) = &record.peer {
        visit("p", peer.as_bytes());
    }
    match &record.meta {
        RecordMeta::None => {}
        RecordMeta::HecEvent { meta, index } | RecordMeta::HecRaw { meta, index } => {
            let kind = if matches!(record.meta, RecordMeta::HecEvent { .. }) { "hec_event" } else { "hec_raw" };
            visit("m", kind.as_bytes());
            visit("i", index.to_string().as_bytes());
            visit("h", hec_meta_json(meta).as_bytes());
        }
        RecordMeta::File { identity, offset } => {
            visit("m", b"file");
            visit("i", offset.to_string().as_bytes());
            visit("f", identity.as_bytes());
        }
    }
}

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

/// Decodes entries, sharing the source name and the HEC request metadata between consecutive
/// records that carry the same (as the records of one HEC request do).
#[derive(Default)]
pub struct Decoder {
    source_name: Option<Arc<str>>,
    hec_meta: Option<(Vec<u8>, Arc<HecMeta>)>,
}

fn field<'a>(fields: &'a HashMap<String, Value>, name: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::BulkString(bytes)) => Ok(Some(bytes)),
        Some(Value::SimpleString(text)) => Ok(Some(text.as_bytes())),
        Some(other) => Err(DecodeError::Invalid { field: name, reason: format!("unexpected reply type {other:?}") }),
    }
}

fn required<'a>(fields: &'a HashMap<String, Value>, name: &'static str) -> Result<&'a [u8], DecodeError> {
    field(fields, name)?.ok_or(DecodeError::Missing(name))
}

fn text<'a>(name: &'static str, bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|error| DecodeError::Invalid { field: name, reason: error.to_string() })
}

fn number<T: std::str::FromStr>(name: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    let value = text(name, bytes)?;
    value.parse().map_err(|_| DecodeError::Invalid { field: name, reason: format!("{value:?} is not a number") })
}

impl Decoder {
    /// The record of one entry's fields.
    pub fn decode(&mut self, fields: &HashMap<String, Value>) -> Result<RawRecord, DecodeError> {
        let version = text("v", required(fields, "v")?)?;
        if version != LAYOUT_VERSION {
            return Err(DecodeError::Version(version.to_string()));
        }
        let kind_text = text("k", required(fields, "k")?)?;
        let kind = SourceKind::parse(kind_text)
            .ok_or_else(|| DecodeError::Invalid { field: "k", reason: format!("unknown kind {kind_text:?}") })?;
        let source_name = text("s", required(fields, "s")?)?;
        let source_name = match &self.source_name {
            Some(shared) if &**shared == source_name => shared.clone(),
            _ => {
                let shared: Arc<str> = source_name.into();
                self.source_name = Some(shared.clone());
                shared
            }
        };
        let received = parse_time("t", text("t", required(fields, "t")?)?)?;
        let body = required(fields, "b")?.to_vec();
        let peer = field(fields, "p")?.map(|bytes| text("p", bytes).map(str::to_string)).transpose()?;
        let meta = match field(fields, "m")? {
            None => RecordMeta::None,
            Some(b"file") => RecordMeta::File {
                identity: text("f", required(fields, "f")?)?.to_string(),
                offset: number("i", required(fields, "i")?)?,
            },
            Some(tag @ (b"hec_event" | b"hec_raw")) => {
                let index = number("i", required(fields, "i")?)?;
                let meta = self.hec_meta(required(fields, "h")?)?;
                if tag == b"hec_event" {
                    RecordMeta::HecEvent { meta, index }
                } else {
                    RecordMeta::HecRaw { meta, index }
                }
            }
            Some(other) => {
                let reason = format!("unknown meta kind {:?}", String::from_utf8_lossy(other));
                return Err(DecodeError::Invalid { field: "m", reason });
            }
        };
        Ok(RawRecord { kind, source_name, peer, received, body, meta })
    }

    fn hec_meta(&mut self, json: &[u8]) -> Result<Arc<HecMeta>, DecodeError> {
        if let Some((last, shared)) = &self.hec_meta {
            if last.as_slice() == json {
                return Ok(shared.clone());
            }
        }
        let shared = Arc::new(parse_hec_meta(json)?);
        self.hec_meta = Some((json.to_vec(), shared.clone()));
        Ok(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(record: &RawRecord) -> HashMap<String, Value> {
        encode(record).into_iter().map(|(name, value)| (name.to_string(), Value::BulkString(value))).collect()
    }

    pub(crate) fn sample_records() -> Vec<RawRecord> {
        let hec = Arc::new(HecMeta {
            token_name: "edge \"token\"".into(),
            channel: Some("0aa4c5a0-1e6b-4e0b-8f5e-3c0f6c1d7c11".into()),
            defaults: HecDefaults {
                host: Some("web-01".into()),
                source: None,
                sourcetype: Some("access_combined".into()),
                index: Some("main".into()),
                time: DateTime::from_timestamp(1_709_287_300, 5),
            },
        });
        let received = DateTime::from_timestamp(1_709_287_300, 123_456_789).unwrap();
        vec![
            RawRecord {
                kind: SourceKind::Syslog,
                source_name: "syslog-udp".into(),
                peer: Some("192.0.2.10:514".into()),
                received,
                body: b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed".to_vec(),
                meta: RecordMeta::None,
            },
            RawRecord {
                kind: SourceKind::Hec,
                source_name: "hec".into(),
                peer: None,
                received: DateTime::from_timestamp(-5, 0).unwrap(),
                body: vec![0, 159, 146, 150, b'\n', b'\r', 255],
                meta: RecordMeta::HecRaw { meta: hec.clone(), index: 7 },
            },
            RawRecord {
                kind: SourceKind::Hec,
                source_name: "hec".into(),
                peer: Some("[2001:db8::1]:443".into()),
                received,
                body: br#"{"event":"x"}"#.to_vec(),
                meta: RecordMeta::HecEvent { meta: Arc::new(HecMeta::default()), index: u32::MAX },
            },
            RawRecord {
                kind: SourceKind::Wazuh,
                source_name: "wazuh".into(),
                peer: Some("/var/ossec/logs/alerts/alerts.json".into()),
                // A leap second: nanoseconds above one billion.
                received: DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap(),
                body: Vec::new(),
                meta: RecordMeta::File { identity: "2049:131".into(), offset: u64::MAX },
            },
        ]
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
