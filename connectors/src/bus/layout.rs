//! The raw-record layout both buses share: a record as a few named fields (one-letter names).
//!
//! | field | value | present |
//! |---|---|---|
//! | `v` | layout version, `1` | always |
//! | `k` | source kind (`hec`, `syslog`, `wazuh`, …) | always |
//! | `s` | source name | always |
//! | `t` | receive time, `<unix seconds>.<nanoseconds, 9 digits>` (10 in a leap second) | always |
//! | `b` | body bytes, as received (binary safe) | always |
//! | `p` | peer (`ip:port` or file path) | when known |
//! | `n` | tenant name | unless `default` (absent reads as `default`, as layout-1 records written before tenants do) |
//! | `m` | meta kind: `hec_event`, `hec_raw`, `file` or `tls` | unless no meta |
//! | `i` | HEC: index in the request; file: byte offset | HEC, file |
//! | `h` | HEC: request metadata as compact JSON (token name, channel, defaults) | HEC |
//! | `f` | file: identity (`dev:inode`) | file |
//! | `c` | TLS: the client certificate's subject | tls |
//!
//! Values are binary strings, so the body needs no escaping and the layout round-trips every
//! record exactly. Redis writes the fields as the fields of a stream entry
//! ([`super::redis::codec`]); Kafka frames them into one message value
//! ([`super::kafka::envelope`]). Readers reject a record whose `v` they do not know.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use securewatch_schemas::{HecDefaults, HecMeta, RawRecord, RecordMeta};
use securewatch_schemas::{SourceKind, Tenant};
use serde::{Deserialize, Serialize};

/// The layout version written in field `v`.
pub const LAYOUT_VERSION: &str = "1";

/// Why a bus entry or message is not a record this build can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required layout field is absent.
    #[error("field `{0}` is missing")]
    Missing(&'static str),
    /// A field is present but its value cannot be read.
    #[error("field `{field}` is invalid: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The layout version field names a version this build does not read.
    #[error("layout version {0:?} is not supported")]
    Version(String),
    /// The message is not a record envelope.
    #[error("not a record envelope: {0}")]
    Envelope(String),
    /// The message is not an Avro record of the configured schema.
    #[error("not an Avro record of the configured schema: {0}")]
    Avro(String),
    /// The message is not a JSON object.
    #[error("not a JSON object: {0}")]
    Json(String),
}

impl DecodeError {
    /// A short label for metrics and dead letters.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Missing(_) => "missing_field",
            DecodeError::Invalid { .. } => "invalid_field",
            DecodeError::Version(_) => "unknown_version",
            DecodeError::Envelope(_) => "bad_envelope",
            DecodeError::Avro(_) => "bad_avro",
            DecodeError::Json(_) => "bad_json",
        }
    }
}

/// `secs.nnnnnnnnn`, exact for every `DateTime<Utc>` (leap-second nanoseconds included).
pub(crate) fn format_time(time: &DateTime<Utc>) -> String {
    format!("{}.{:09}", time.timestamp(), time.timestamp_subsec_nanos())
}

pub(crate) fn parse_time(field: &'static str, text: &str) -> Result<DateTime<Utc>, DecodeError> {
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
    token: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    host: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    sourcetype: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    index: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<String>,
}

fn hec_meta_json(meta: &HecMeta) -> String {
    fn borrowed(value: &Option<String>) -> Option<Cow<'_, str>> {
        value.as_deref().map(Cow::Borrowed)
    }
    let json = HecMetaJson {
        token: Cow::Borrowed(&meta.token_name),
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
    let owned = |value: Option<Cow<'_, str>>| value.map(Cow::into_owned);
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
pub fn for_each_field(record: &RawRecord, mut visit: impl FnMut(&'static str, &[u8])) {
    visit("v", LAYOUT_VERSION.as_bytes());
    visit("k", record.kind.as_str().as_bytes());
    visit("s", record.source_name.as_bytes());
    visit("t", format_time(&record.received).as_bytes());
    visit("b", &record.body);
    if let Some(peer) = &record.peer {
        visit("p", peer.as_bytes());
    }
    if !record.tenant.is_default() {
        visit("n", record.tenant.as_bytes());
    }
    match &record.meta {
        RecordMeta::None => {}
        RecordMeta::HecEvent { meta, index } | RecordMeta::HecRaw { meta, index } => {
            let kind = if matches!(record.meta, RecordMeta::HecEvent { .. }) { "hec_event" } else { "hec_raw" };
            visit("m", kind.as_bytes());
            visit("i", index.to_string().as_bytes());
            visit("h", hec_meta_json(meta).as_bytes());
        }
        RecordMeta::TlsPeer { identity } => {
            visit("m", b"tls");
            visit("c", identity.as_bytes());
        }
        RecordMeta::File { identity, offset } => {
            visit("m", b"file");
            visit("i", offset.to_string().as_bytes());
            visit("f", identity.as_bytes());
        }
    }
}

fn text<'a>(name: &'static str, bytes: &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|error| DecodeError::Invalid { field: name, reason: error.to_string() })
}

fn number<T: std::str::FromStr>(name: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    let value = text(name, bytes)?;
    value.parse().map_err(|_| DecodeError::Invalid { field: name, reason: format!("{value:?} is not a number") })
}

/// Decodes records, sharing the source name and the HEC request metadata between consecutive
/// records that carry the same (as the records of one HEC request do).
#[derive(Debug, Default)]
pub struct Decoder {
    source_name: Option<Arc<str>>,
    tenant: Option<Tenant>,
    hec_meta: Option<(Vec<u8>, Arc<HecMeta>)>,
}

impl Decoder {
    /// The source name as a shared string: the previous record's when it is the same.
    pub(crate) fn shared_source_name(&mut self, name: &str) -> Arc<str> {
        match &self.source_name {
            Some(shared) if &**shared == name => shared.clone(),
            _ => {
                let shared: Arc<str> = name.into();
                self.source_name = Some(shared.clone());
                shared
            }
        }
    }

    /// The tenant as a shared string: the previous record's when it is the same.
    pub(crate) fn shared_tenant(&mut self, name: &str) -> Tenant {
        match &self.tenant {
            Some(shared) if shared.as_str() == name => shared.clone(),
            _ => {
                let shared = Tenant::from_stored(name);
                self.tenant = Some(shared.clone());
                shared
            }
        }
    }

    /// The record whose fields `field` looks up by name (`Ok(None)`: absent).
    pub(crate) fn decode_fields<'a>(
        &mut self,
        field: impl Fn(&'static str) -> Result<Option<&'a [u8]>, DecodeError>,
    ) -> Result<RawRecord, DecodeError> {
        let required = |name: &'static str| field(name)?.ok_or(DecodeError::Missing(name));
        let version = text("v", required("v")?)?;
        if version != LAYOUT_VERSION {
            return Err(DecodeError::Version(version.to_string()));
        }
        let kind_text = text("k", required("k")?)?;
        let kind = SourceKind::parse(kind_text)
            .ok_or_else(|| DecodeError::Invalid { field: "k", reason: format!("unknown kind {kind_text:?}") })?;
        let source_name = self.shared_source_name(text("s", required("s")?)?);
        let received = parse_time("t", text("t", required("t")?)?)?;
        let body = required("b")?.to_vec();
        let peer = field("p")?.map(|bytes| text("p", bytes).map(str::to_string)).transpose()?;
        let tenant = match field("n")? {
            Some(bytes) => self.shared_tenant(text("n", bytes)?),
            None => Tenant::default(),
        };
        let meta = match field("m")? {
            None => RecordMeta::None,
            Some(b"file") => RecordMeta::File {
                identity: text("f", required("f")?)?.to_string(),
                offset: number("i", required("i")?)?,
            },
            Some(b"tls") => RecordMeta::TlsPeer { identity: Arc::from(text("c", required("c")?)?) },
            Some(tag @ (b"hec_event" | b"hec_raw")) => {
                let index = number("i", required("i")?)?;
                let meta = self.hec_meta(required("h")?)?;
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
        Ok(RawRecord { kind, source_name, tenant, peer, received, body, meta })
    }

    /// HEC request metadata from the JSON of field `h`, shared with the previous record's.
    pub(crate) fn hec_meta(&mut self, json: &[u8]) -> Result<Arc<HecMeta>, DecodeError> {
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

/// HEC request metadata as the compact JSON of field `h` (also the Avro layout's `hec` field).
pub(crate) fn encode_hec_meta(meta: &HecMeta) -> String {
    hec_meta_json(meta)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The address of a test service tests/run.sh started (`SECUREWATCH_TEST_<name>`), or
    /// `None` (test skipped, reason printed) unless `SECUREWATCH_REQUIRE_<service>=1` makes
    /// its absence a failure.
    pub(crate) fn test_service(variable: &str, require: &str, what: &str) -> Option<String> {
        match std::env::var(variable) {
            Ok(address) if !address.is_empty() => Some(address),
            _ => {
                assert!(
                    std::env::var(require).as_deref() != Ok("1"),
                    "{variable} is not set although {require}=1 (tests/run.sh starts {what} and sets it)"
                );
                eprintln!("skipped: {variable} is not set (run tests/run.sh, which starts {what})");
                None
            }
        }
    }

    /// One record of every kind and meta, with edge values (binary body, negative and leap-second
    /// times, `u32::MAX` / `u64::MAX` positions).
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
                tenant: Tenant::parse("acme").unwrap(),
                peer: Some("192.0.2.10:514".into()),
                received,
                body: b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed".to_vec(),
                meta: RecordMeta::None,
            },
            RawRecord {
                kind: SourceKind::Hec,
                source_name: "hec".into(),
                tenant: Tenant::default(),
                peer: None,
                received: DateTime::from_timestamp(-5, 0).unwrap(),
                body: vec![0, 159, 146, 150, b'\n', b'\r', 255],
                meta: RecordMeta::HecRaw { meta: hec.clone(), index: 7 },
            },
            RawRecord {
                kind: SourceKind::Hec,
                source_name: "hec".into(),
                tenant: Tenant::default(),
                peer: Some("[2001:db8::1]:443".into()),
                received,
                body: br#"{"event":"x"}"#.to_vec(),
                meta: RecordMeta::HecEvent { meta: Arc::new(HecMeta::default()), index: u32::MAX },
            },
            RawRecord {
                kind: SourceKind::Wazuh,
                source_name: "wazuh".into(),
                tenant: Tenant::parse("globex").unwrap(),
                peer: Some("/var/ossec/logs/alerts/alerts.json".into()),
                // A leap second: nanoseconds above one billion.
                received: DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap(),
                body: Vec::new(),
                meta: RecordMeta::File { identity: "2049:131".into(), offset: u64::MAX },
            },
            RawRecord {
                kind: SourceKind::Syslog,
                source_name: "syslog-tls".into(),
                tenant: Tenant::default(),
                peer: Some("192.0.2.11:50514".into()),
                received,
                body: b"<13>1 2024-03-01T10:00:00Z relay app - - - over TLS".to_vec(),
                meta: RecordMeta::TlsPeer { identity: "CN=relay.example.com,O=Example \"Corp\"".into() },
            },
        ]
    }

    /// `count` records of every kind, numbered from `first` in their bodies.
    pub(crate) fn numbered_records(first: usize, count: usize) -> Vec<RawRecord> {
        let hec = Arc::new(HecMeta { token_name: "edge".into(), channel: Some("ch-1".into()), ..HecMeta::default() });
        (first..first + count)
            .map(|n| {
                let received = DateTime::from_timestamp(1_709_287_300 + n as i64, (n % 1_000_000_000) as u32).unwrap();
                let (kind, meta, peer) = match n % 4 {
                    0 => (SourceKind::Syslog, RecordMeta::None, Some(format!("192.0.2.{}:514", n % 250))),
                    1 => (SourceKind::Hec, RecordMeta::HecEvent { meta: hec.clone(), index: n as u32 }, None),
                    2 => (SourceKind::Hec, RecordMeta::HecRaw { meta: hec.clone(), index: n as u32 }, Some("[::1]:8088".into())),
                    _ => (SourceKind::Wazuh, RecordMeta::File { identity: "2049:77".into(), offset: n as u64 * 512 }, None),
                };
                let mut body = format!("seq={n} message with some text").into_bytes();
                body.extend_from_slice(&[0, 255, b'\n']);
                let tenant = if n % 5 == 0 { Tenant::parse("acme").unwrap() } else { Tenant::default() };
                RawRecord { kind, source_name: format!("source-{}", n % 3).into(), tenant, peer, received, body, meta }
            })
            .collect()
    }
}
