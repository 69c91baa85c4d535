//! Cutting HEC request bodies into records, with Splunk's checks and error codes.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use securewatch_schemas::parse_epoch_seconds;

/// Why a `/services/collector/event` body was refused; `index` is the 0-based number of the
/// offending envelope (Splunk's `invalid-event-number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("HEC envelope {index}: {kind}")]
pub struct HecBodyError {
    /// 0-based number of the envelope that failed (0 for [`HecBodyErrorKind::NoData`]).
    pub index: usize,
    /// What is wrong with it.
    pub kind: HecBodyErrorKind,
}

/// What is wrong with an envelope, each mapped onto Splunk's code and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HecBodyErrorKind {
    /// The body is empty or only whitespace (code 5).
    #[error("the body holds no data")]
    NoData,
    /// Not valid JSON, or cut short (code 6).
    #[error("not valid JSON")]
    InvalidJson,
    /// Arrays and objects nested deeper than [`MAX_NESTING`] levels, the envelope counted
    /// (code 6): `serde_json` would refuse to build the envelope later.
    #[error("nested deeper than {MAX_NESTING} levels")]
    TooDeep,
    /// A number that a 64-bit float cannot hold, such as a 400-digit integer or `1e400`
    /// (code 6): `serde_json` would refuse to build the envelope later.
    #[error("a number out of range")]
    NumberOutOfRange,
    /// A top-level value that is not a JSON object (code 6).
    #[error("not a JSON object")]
    NotAnObject,
    /// `time` is neither epoch seconds as a number nor a numeric string (code 6).
    #[error("`time` is not epoch seconds")]
    InvalidTime,
    /// `host`, `source`, `sourcetype` or `index` is not a string (code 6).
    #[error("`host`, `source`, `sourcetype` and `index` must be strings")]
    InvalidMetadata,
    /// No `event` key (code 12).
    #[error("no `event` key")]
    EventMissing,
    /// `event` is null, an empty string or only whitespace (code 13).
    #[error("`event` is blank")]
    EventBlank,
    /// `fields` is not an object (code 15).
    #[error("`fields` is not an object")]
    InvalidFields,
}

impl HecBodyErrorKind {
    /// Splunk's numeric status code for this error.
    pub fn code(self) -> u16 {
        match self {
            HecBodyErrorKind::NoData => 5,
            HecBodyErrorKind::InvalidJson
            | HecBodyErrorKind::TooDeep
            | HecBodyErrorKind::NumberOutOfRange
            | HecBodyErrorKind::NotAnObject
            | HecBodyErrorKind::InvalidTime
            | HecBodyErrorKind::InvalidMetadata => 6,
            HecBodyErrorKind::EventMissing => 12,
            HecBodyErrorKind::EventBlank => 13,
            HecBodyErrorKind::InvalidFields => 15,
        }
    }

    /// Splunk's response text for this error.
    pub fn text(self) -> &'static str {
        match self.code() {
            5 => "No data",
            12 => "Event field is required",
            13 => "Event field cannot be blank",
            15 => "Error in handling indexed fields",
            _ => "Invalid data format",
        }
    }
}

impl HecBodyError {
    /// Splunk's numeric status code.
    pub fn code(&self) -> u16 {
        self.kind.code()
    }

    /// Splunk's response text.
    pub fn text(&self) -> &'static str {
        self.kind.text()
    }

    /// The `invalid-event-number` to report: every error but [`HecBodyErrorKind::NoData`]
    /// names an envelope.
    pub fn invalid_event_number(&self) -> Option<usize> {
        (self.kind != HecBodyErrorKind::NoData).then_some(self.index)
    }
}

/// How deep arrays and objects may nest in one envelope, the envelope itself counted as level 1:
/// one less than `serde_json`'s default recursion limit (128), which refuses the 128th level.
pub const MAX_NESTING: usize = 127;

/// Cuts a `/services/collector/event` body into the byte ranges of its JSON envelopes.
///
/// Envelopes may follow each other directly (`{..}{..}`) or be separated by whitespace and
/// newlines. Each is checked without building a JSON tree: it must be an object with a
/// non-blank `event`; `time`, when present and not null, must be epoch seconds (number or
/// numeric string); `host`, `source`, `sourcetype`, `index` must be strings (or null);
/// `fields` an object (or null). Every value is read with the limits that normalisation's
/// `serde_json::Value` has, so nothing accepted here fails there: at most [`MAX_NESTING`]
/// levels, and numbers within a 64-bit float's range. The first failure refuses the whole
/// body, as Splunk does.
pub fn split_events(body: &[u8]) -> Result<Vec<Range<usize>>, HecBodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(HecBodyError { index: 0, kind: HecBodyErrorKind::NoData });
    }
    let mut ranges = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<EnvelopeCheck>();
    loop {
        let index = ranges.len();
        let fail = |kind| HecBodyError { index, kind };
        let start = skip_whitespace(body, stream.byte_offset());
        match body.get(start) {
            None => return Ok(ranges),
            Some(b'{') => {}
            Some(_) => return Err(fail(HecBodyErrorKind::NotAnObject)),
        }
        match stream.next() {
            Some(Ok(check)) => {
                check.verdict().map_err(fail)?;
                ranges.push(start..stream.byte_offset());
            }
            Some(Err(error)) => return Err(fail(json_error_kind(&error))),
            None => return Ok(ranges),
        }
    }
}

/// Cuts a `/services/collector/raw` body into lines (LF or CRLF, the terminator excluded).
/// Empty and whitespace-only lines are skipped.
pub fn split_raw(body: &[u8]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for line in body.split(|byte| *byte == b'\n') {
        let end = start + line.len();
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        if !content.iter().all(u8::is_ascii_whitespace) {
            ranges.push(start..start + content.len());
        }
        start = end + 1;
    }
    ranges
}

/// Which kind a `serde_json` error is: its two limits have no error code of their own, only their
/// message (`json_errors_map_to_their_kinds` pins it).
fn json_error_kind(error: &serde_json::Error) -> HecBodyErrorKind {
    let message = error.to_string();
    if message.starts_with("recursion limit exceeded") {
        HecBodyErrorKind::TooDeep
    } else if message.starts_with("number out of range") {
        HecBodyErrorKind::NumberOutOfRange
    } else {
        HecBodyErrorKind::InvalidJson
    }
}

fn skip_whitespace(body: &[u8], from: usize) -> usize {
    let skipped = body.get(from..).map_or(0, |rest| {
        rest.iter().take_while(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r')).count()
    });
    from + skipped
}

/// What a cheap pass over one envelope object found.
struct EnvelopeCheck {
    event: Option<Shape>,
    time: Option<Shape>,
    metadata_are_text: bool,
    fields: Option<Shape>,
}

impl EnvelopeCheck {
    fn verdict(&self) -> Result<(), HecBodyErrorKind> {
        match self.event {
            None => return Err(HecBodyErrorKind::EventMissing),
            Some(Shape::Null | Shape::Text { blank: true, .. }) => {
                return Err(HecBodyErrorKind::EventBlank)
            }
            Some(_) => {}
        }
        match self.time {
            None | Some(Shape::Null) => {}
            Some(Shape::Number { epoch } | Shape::Text { epoch, .. }) if epoch => {}
            Some(_) => return Err(HecBodyErrorKind::InvalidTime),
        }
        if !self.metadata_are_text {
            return Err(HecBodyErrorKind::InvalidMetadata);
        }
        match self.fields {
            None | Some(Shape::Null | Shape::Object) => Ok(()),
            Some(_) => Err(HecBodyErrorKind::InvalidFields),
        }
    }
}

/// The envelope keys that are checked; every other key is skipped unread.
enum EnvelopeKey {
    Event,
    Time,
    Metadata,
    Fields,
    Other,
}

impl<'de> Deserialize<'de> for EnvelopeKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = EnvelopeKey;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an envelope key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<EnvelopeKey, E> {
                Ok(match key {
                    "event" => EnvelopeKey::Event,
                    "time" => EnvelopeKey::Time,
                    "host" | "source" | "sourcetype" | "index" => EnvelopeKey::Metadata,
                    "fields" => EnvelopeKey::Fields,
                    _ => EnvelopeKey::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for EnvelopeCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = EnvelopeCheck;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a HEC envelope object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EnvelopeCheck, A::Error> {
                let mut check = EnvelopeCheck {
                    event: None,
                    time: None,
                    metadata_are_text: true,
                    fields: None,
                };
                while let Some(key) = map.next_key::<EnvelopeKey>()? {
                    match key {
                        EnvelopeKey::Event => check.event = Some(map.next_value()?),
                        EnvelopeKey::Time => check.time = Some(map.next_value()?),
                        EnvelopeKey::Metadata => {
                            let shape: Shape = map.next_value()?;
                            check.metadata_are_text &=
                                matches!(shape, Shape::Null | Shape::Text { .. });
                        }
                        EnvelopeKey::Fields => check.fields = Some(map.next_value()?),
                        EnvelopeKey::Other => {
                            map.next_value::<Skip>()?;
                        }
                    }
                }
                Ok(check)
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// The shape of one envelope value; containers are skipped without being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Null,
    Bool,
    /// `epoch`: the number is valid epoch seconds.
    Number {
        epoch: bool,
    },
    /// `blank`: empty or whitespace only; `epoch`: the text is valid epoch seconds.
    Text {
        blank: bool,
        epoch: bool,
    },
    Object,
    Array,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_bool<E: de::Error>(self, _value: bool) -> Result<Shape, E> {
        Ok(Shape::Bool)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Shape, E> {
        Ok(Shape::Number { epoch: parse_epoch_seconds(&value.to_string()).is_some() })
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Shape, E> {
        Ok(Shape::Number { epoch: parse_epoch_seconds(&value.to_string()).is_some() })
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Shape, E> {
        Ok(Shape::Number { epoch: parse_epoch_seconds(&value.to_string()).is_some() })
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Shape, E> {
        let blank = value.trim().is_empty();
        // Epoch seconds are short; long texts (event bodies) are not parsed for nothing.
        let epoch = !blank && value.len() <= 64 && parse_epoch_seconds(value).is_some();
        Ok(Shape::Text { blank, epoch })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Shape::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Shape::Array)
    }
}

/// Any JSON value, read and dropped. Unlike `serde::de::IgnoredAny`, which `serde_json` skips
/// without its recursion limit and without converting numbers, this goes through
/// `deserialize_any` as `serde_json::Value` does, so the same depth and number limits apply.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E: de::Error>(self, _value: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: de::Error>(self, _value: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: de::Error>(self, _value: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: de::Error>(self, _value: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: de::Error>(self, _value: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
#[path = "split_tests.rs"]
mod tests;
