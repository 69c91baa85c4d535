//! Cutting HEC request bodies into records, with Splunk's checks and error codes.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// Cuts a `/services/collector/event` body into the byte ranges of its JSON envelopes.
///
/// Envelopes may follow each other directly (`{..}{..}`) or be separated by whitespace and
/// newlines. Each is checked without building a JSON tree: it must be an object with a
/// non-blank `event`; `time`, when present and not null, must be epoch seconds (number or
/// numeric string); `host`, `source`, `sourcetype`, `index` must be strings (or null);
/// `fields` an object (or null). The first failure refuses the whole body, as Splunk does.
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
            Some(Err(_)) => return Err(fail(HecBodyErrorKind::InvalidJson)),
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
                            map.next_value::<IgnoredAny>()?;
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
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slices<'a>(body: &'a [u8], ranges: &[std::ops::Range<usize>]) -> Vec<&'a str> {
        ranges.iter().map(|range| std::str::from_utf8(&body[range.clone()]).unwrap()).collect()
    }

    fn body_error(body: &str) -> HecBodyError {
        split_events(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn splits_concatenated_envelopes_without_separators() {
        let body = br#"{"event":"a"}{"event":{"k":1},"time":1}{"event":"}{"}"#;
        let ranges = split_events(body).unwrap();
        assert_eq!(
            slices(body, &ranges),
            [r#"{"event":"a"}"#, r#"{"event":{"k":1},"time":1}"#, r#"{"event":"}{"}"#]
        );
    }

    #[test]
    fn splits_envelopes_separated_by_whitespace_and_newlines() {
        let body = b"\n  {\"event\":\"a\"}\r\n\t{ \"event\" : \"b\" }\n\n";
        let ranges = split_events(body).unwrap();
        assert_eq!(slices(body, &ranges), ["{\"event\":\"a\"}", "{ \"event\" : \"b\" }"]);
    }

    #[test]
    fn accepts_every_time_form() {
        let body = br#"{"event":"a","time":1700000000}
    {"event":"b","time":1700000000.5}
    {"event":"c","time":"1700000000.25"}
    {"event":"d"}
    {"event":"e","time":null}"#;
        assert_eq!(split_events(body).unwrap().len(), 5);
    }

    #[test]
    fn every_error_kind_names_the_failing_envelope() {
        let cases: [(&str, HecBodyErrorKind, usize); 13] = [
            (r#"{"event":"ok"}{"time":1}"#, HecBodyErrorKind::EventMissing, 1),
            (r#"{"event":""}"#, HecBodyErrorKind::EventBlank, 0),
            (r#"{"event":"a"} {"event":"a"} {"event":"   "}"#, HecBodyErrorKind::EventBlank, 2),
            (r#"{"event":"a"}{"event":null}"#, HecBodyErrorKind::EventBlank, 1),
            (r#"{"event":"a","time":"yesterday"}"#, HecBodyErrorKind::InvalidTime, 0),
            (r#"{"event":"a"}{"event":"a","time":true}"#, HecBodyErrorKind::InvalidTime, 1),
            (r#"{"event":"a","host":5}"#, HecBodyErrorKind::InvalidMetadata, 0),
            (r#"{"event":"a"}{"event":"a","fields":"x=1"}"#, HecBodyErrorKind::InvalidFields, 1),
            (r#"{"event":"a"}{"event":"b""#, HecBodyErrorKind::InvalidJson, 1),
            (r#"{"event":}"#, HecBodyErrorKind::InvalidJson, 0),
            (r#"[{"event":"a"}]"#, HecBodyErrorKind::NotAnObject, 0),
            (r#"{"event":"a"} 42"#, HecBodyErrorKind::NotAnObject, 1),
            (r#"{"event":"a"}"event""#, HecBodyErrorKind::NotAnObject, 1),
        ];
        for (body, kind, index) in cases {
            assert_eq!(body_error(body), HecBodyError { index, kind }, "{body}");
        }
    }

    #[test]
    fn every_truncation_is_refused_or_cut_at_envelope_ends() {
        let body = "{\"event\":{\"a\":[1,{\"b\":\"}\"}]},\"time\":\"1.5\"}\r\n{\"event\":\"\\u00e9t\u{e9}\"}{\"event\":7}";
        let full = split_events(body.as_bytes()).unwrap();
        assert_eq!(full.len(), 3);
        for cut in 0..body.len() {
            match split_events(&body.as_bytes()[..cut]) {
                Ok(ranges) => {
                    assert!(ranges.len() < 3 || cut == body.len(), "cut {cut}");
                    assert_eq!(ranges[..], full[..ranges.len()], "cut {cut}");
                }
                Err(error) => assert!(error.index < 3, "cut {cut}: {error}"),
            }
        }
    }

    #[test]
    fn empty_bodies_have_no_data_and_no_event_number() {
        for body in ["", " \r\n\t "] {
            let error = body_error(body);
            assert_eq!(error.kind, HecBodyErrorKind::NoData);
            assert_eq!((error.code(), error.text()), (5, "No data"));
            assert_eq!(error.invalid_event_number(), None);
        }
    }

    #[test]
    fn kinds_map_to_splunk_codes_and_texts() {
        let expected = [
            (HecBodyErrorKind::InvalidJson, 6, "Invalid data format"),
            (HecBodyErrorKind::NotAnObject, 6, "Invalid data format"),
            (HecBodyErrorKind::InvalidTime, 6, "Invalid data format"),
            (HecBodyErrorKind::InvalidMetadata, 6, "Invalid data format"),
            (HecBodyErrorKind::EventMissing, 12, "Event field is required"),
            (HecBodyErrorKind::EventBlank, 13, "Event field cannot be blank"),
            (HecBodyErrorKind::InvalidFields, 15, "Error in handling indexed fields"),
        ];
        for (kind, code, text) in expected {
            let error = HecBodyError { index: 3, kind };
            assert_eq!((error.code(), error.text()), (code, text), "{kind:?}");
            assert_eq!(error.invalid_event_number(), Some(3));
        }
    }

    #[test]
    fn raw_bodies_split_into_lines_without_terminators() {
        let body = b"first\r\nsecond\n\n\r\n   \nthird";
        assert_eq!(slices(body, &split_raw(body)), ["first", "second", "third"]);
        let body = b"only line\n";
        assert_eq!(slices(body, &split_raw(body)), ["only line"]);
        assert!(split_raw(b"").is_empty());
        assert!(split_raw(b"\r\n\n").is_empty());
    }
}
