//! The normalised security event that every source produces and every sink stores.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{EventId, Severity, Tenant};

/// Field map: flattened keys (`data.srcip`, `win.eventdata.Image`) keep the source's own names,
/// so Sigma rules written for that log source match them unchanged.
pub type Fields = BTreeMap<String, FieldValue>;

/// One normalised event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Deterministic id (see `EventId`).
    pub id: EventId,
    /// When the event happened, as the source says (falls back to `received`).
    pub time: DateTime<Utc>,
    /// When SecureWatch received it.
    pub received: DateTime<Utc>,
    /// Where it came from.
    pub source: Source,
    /// Whose event it is, set by the source's configuration (`default` when it names none).
    #[serde(default)]
    pub tenant: Tenant,
    /// The host the event is about or came from.
    pub host: Option<String>,
    /// Severity on the syslog scale.
    pub severity: Severity,
    /// A coarse class such as `authentication` or a Wazuh rule group / HEC sourcetype.
    pub category: Option<String>,
    /// Human-readable message.
    pub message: String,
    /// Source-specific fields under their original names.
    #[serde(default)]
    pub fields: Fields,
    /// The raw record as received, when kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// The origin of an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// The kind of connector.
    pub kind: SourceKind,
    /// The configured name of the connector instance.
    pub name: String,
    /// Remote address (ip:port) for network sources, the file path for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// Kinds of connectors; the order matches the Avro enum symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Splunk HTTP Event Collector.
    Hec,
    /// Syslog over UDP or TCP.
    Syslog,
    /// Wazuh alerts (alerts.json or its syslog output).
    Wazuh,
    /// A Kafka topic.
    Kafka,
    /// A Redis stream.
    Redis,
    /// A tailed file.
    File,
}

impl SourceKind {
    /// All kinds in Avro symbol order.
    pub const ALL: [SourceKind; 6] = [
        SourceKind::Hec,
        SourceKind::Syslog,
        SourceKind::Wazuh,
        SourceKind::Kafka,
        SourceKind::Redis,
        SourceKind::File,
    ];

    /// The lower-case name used in JSON, metrics labels and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Hec => "hec",
            SourceKind::Syslog => "syslog",
            SourceKind::Wazuh => "wazuh",
            SourceKind::Kafka => "kafka",
            SourceKind::Redis => "redis",
            SourceKind::File => "file",
        }
    }

    /// Inverse of [`SourceKind::as_str`].
    pub fn parse(text: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field value. Arrays hold their elements as strings (Sigma matches any element).
///
/// Serialized untagged (the JSON value itself); read back by [`FieldValueVisitor`], which takes
/// the JSON type as it comes instead of trying each variant in turn as `#[serde(untagged)]`
/// does: each failed try formats an error message, a tenth of a backtest's CPU.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Str(String),
    /// A list, its items as text.
    List(Vec<String>),
}

/// Reads a [`FieldValue`] from the JSON type of the value: null, boolean, integer (an
/// unsigned one past `i64` as a float), float, text, or a list of texts.
struct FieldValueVisitor;

impl<'de> serde::de::Visitor<'de> for FieldValueVisitor {
    type Value = FieldValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("null, a boolean, a number, a string or a list of strings")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<FieldValue, E> {
        Ok(FieldValue::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<FieldValue, E> {
        Ok(FieldValue::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<FieldValue, E> {
        Ok(FieldValue::Bool(value))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<FieldValue, E> {
        Ok(FieldValue::Int(value))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<FieldValue, E> {
        Ok(i64::try_from(value).map_or(FieldValue::Float(value as f64), FieldValue::Int))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<FieldValue, E> {
        Ok(FieldValue::Float(value))
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<FieldValue, E> {
        Ok(FieldValue::Str(value.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<FieldValue, E> {
        Ok(FieldValue::Str(value))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<FieldValue, A::Error> {
        let mut list = Vec::with_capacity(items.size_hint().unwrap_or(0));
        while let Some(item) = items.next_element::<String>()? {
            list.push(item);
        }
        Ok(FieldValue::List(list))
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FieldValue, D::Error> {
        deserializer.deserialize_any(FieldValueVisitor)
    }
}

impl FieldValue {
    /// The value as text, as a Sigma matcher or the store's search sees it.
    pub fn as_text(&self) -> String {
        match self {
            FieldValue::Null => String::new(),
            FieldValue::Bool(value) => value.to_string(),
            FieldValue::Int(value) => value.to_string(),
            FieldValue::Float(value) => value.to_string(),
            FieldValue::Str(value) => value.clone(),
            FieldValue::List(values) => values.join(","),
        }
    }

    /// The string inside, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(value) => Some(value),
            _ => None,
        }
    }
}

impl From<&str> for FieldValue {
    fn from(value: &str) -> Self {
        FieldValue::Str(value.to_string())
    }
}

impl From<String> for FieldValue {
    fn from(value: String) -> Self {
        FieldValue::Str(value)
    }
}

impl Event {
    /// An event read from a file of JSON objects (rule tests, regression samples): `fields`
    /// are the object flattened under its own names, `source` is a `file` source named
    /// `source_name`, and time and received time are `time`.
    pub fn from_json_object(id: EventId, time: DateTime<Utc>, source_name: &str, object: serde_json::Value) -> Event {
        let mut fields = Fields::new();
        flatten_json(String::new(), object, &mut fields);
        Event {
            id,
            time,
            received: time,
            source: Source { kind: SourceKind::File, name: source_name.to_string(), peer: None },
            tenant: Tenant::default(),
            host: None,
            severity: Severity::Informational,
            category: None,
            message: String::new(),
            fields,
            raw: None,
        }
    }
}

/// Flattens a JSON value into `fields` under `path` with dotted keys: objects recurse, arrays
/// of scalars become [`FieldValue::List`], arrays holding objects are kept as JSON text. An
/// object under the empty path puts its keys at the top. The value is consumed, so its strings
/// and top-level keys move into `fields` without copies.
pub fn flatten_json(path: String, value: serde_json::Value, fields: &mut Fields) {
    use serde_json::Value;
    let field = match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let path = if path.is_empty() { key } else { format!("{path}.{key}") };
                flatten_json(path, inner, fields);
            }
            return;
        }
        Value::Array(items) => {
            let all_scalars = items.iter().all(|item| !matches!(item, Value::Array(_) | Value::Object(_)));
            if all_scalars {
                FieldValue::List(
                    items
                        .into_iter()
                        .map(|item| match item {
                            Value::String(text) => text,
                            Value::Null => String::new(),
                            scalar => scalar.to_string(),
                        })
                        .collect(),
                )
            } else {
                FieldValue::Str(Value::Array(items).to_string())
            }
        }
        Value::String(text) => FieldValue::Str(text),
        Value::Number(number) => match number.as_i64() {
            Some(int) => FieldValue::Int(int),
            None => FieldValue::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Bool(flag) => FieldValue::Bool(flag),
        Value::Null => FieldValue::Null,
    };
    fields.insert(path, field);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_keeps_original_names() {
        let value = serde_json::json!({
            "win": {"eventdata": {"Image": "C:\\x.exe", "ProcessId": 42}},
            "groups": ["a", "b"],
            "nested": [{"k": 1}],
            "ok": true,
            "none": null,
            "ratio": 0.5
        });
        let mut fields = Fields::new();
        flatten_json("data".into(), value, &mut fields);
        assert_eq!(fields["data.win.eventdata.Image"], FieldValue::from("C:\\x.exe"));
        assert_eq!(fields["data.win.eventdata.ProcessId"], FieldValue::Int(42));
        assert_eq!(fields["data.groups"], FieldValue::List(vec!["a".into(), "b".into()]));
        assert_eq!(fields["data.nested"], FieldValue::from("[{\"k\":1}]"));
        assert_eq!(fields["data.ok"], FieldValue::Bool(true));
        assert_eq!(fields["data.none"], FieldValue::Null);
        assert_eq!(fields["data.ratio"], FieldValue::Float(0.5));
    }

    #[test]
    fn field_values_read_back_as_the_json_type_they_were_written_as() {
        let values = [
            FieldValue::Null,
            FieldValue::Bool(false),
            FieldValue::Int(-7),
            FieldValue::Int(i64::MAX),
            FieldValue::Float(0.25),
            FieldValue::Str("true".into()),
            FieldValue::Str("42".into()),
            FieldValue::List(vec!["a".into(), "1".into()]),
            FieldValue::List(Vec::new()),
        ];
        for value in values {
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(serde_json::from_str::<FieldValue>(&json).unwrap(), value, "{json}");
        }
        // An unsigned integer past i64 is kept as a float, as the untagged derive did.
        assert_eq!(serde_json::from_str::<FieldValue>("18446744073709551615").unwrap(), FieldValue::Float(u64::MAX as f64));
        for refused in ["[1, 2]", "{\"k\": 1}"] {
            let error = serde_json::from_str::<FieldValue>(refused).unwrap_err().to_string();
            assert!(error.contains("invalid type"), "{refused}: {error}");
        }
    }

    #[test]
    fn source_kind_names_round_trip() {
        for kind in SourceKind::ALL {
            assert_eq!(SourceKind::parse(kind.as_str()), Some(kind));
        }
    }
}
