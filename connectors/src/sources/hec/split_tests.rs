//! Tests of the HEC body splitter: envelope cuts, Splunk error codes, depth and number limits.

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
        (HecBodyErrorKind::TooDeep, 6, "Invalid data format"),
        (HecBodyErrorKind::NumberOutOfRange, 6, "Invalid data format"),
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

/// `{"event":` + `depth` nested arrays (+ `extra` key elsewhere in the envelope).
fn nested(depth: usize, inner: &str) -> String {
    format!("{{\"event\":{}{inner}{}}}", "[".repeat(depth), "]".repeat(depth))
}

/// What normalisation (`serde_json::Value`) makes of the same envelope.
fn value_accepts(envelope: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(envelope).is_ok()
}

#[test]
fn nesting_is_refused_where_serde_json_value_refuses_it() {
    // Issue 24 finding 4: 127 levels under `event` were accepted here, then dead-lettered.
    let deepest = nested(MAX_NESTING - 1, "");
    assert!(value_accepts(&deepest));
    assert_eq!(split_events(deepest.as_bytes()).unwrap().len(), 1);
    let too_deep = nested(MAX_NESTING, "");
    assert!(!value_accepts(&too_deep));
    assert_eq!(body_error(&too_deep), HecBodyError { index: 0, kind: HecBodyErrorKind::TooDeep });
    // Deep objects, under any key, in a later envelope.
    let objects = format!(
        "{{\"event\":\"a\"}}{{\"event\":\"b\",\"x\":{}1{}}}",
        "{\"k\":".repeat(MAX_NESTING),
        "}".repeat(MAX_NESTING)
    );
    assert_eq!(body_error(&objects), HecBodyError { index: 1, kind: HecBodyErrorKind::TooDeep });
    let fields = format!("{{\"event\":\"a\",\"fields\":{{\"k\":{}{}}}}}", "[".repeat(126), "]".repeat(126));
    assert!(!value_accepts(&fields));
    assert_eq!(body_error(&fields).kind, HecBodyErrorKind::TooDeep);
}

#[test]
fn numbers_are_refused_where_serde_json_value_refuses_them() {
    let huge = "9".repeat(400);
    let refused = [
        format!("{{\"event\":{huge}}}"),
        format!("{{\"event\":\"a\",\"other\":[-{huge}]}}"),
        "{\"event\":{\"n\":1e400}}".to_string(),
        "{\"event\":\"a\",\"fields\":{\"n\":-1.5e309}}".to_string(),
        format!("{{\"event\":\"a\",\"time\":{huge}}}"),
    ];
    for envelope in &refused {
        assert!(!value_accepts(envelope), "{envelope}");
        let body = format!("{{\"event\":\"first\"}}\n{envelope}");
        assert_eq!(
            body_error(&body),
            HecBodyError { index: 1, kind: HecBodyErrorKind::NumberOutOfRange },
            "{envelope}"
        );
    }
    // Big but representable: beyond u64 and i64 (read as floats), up to f64::MAX.
    let accepted = [
        "{\"event\":{\"n\":18446744073709551616,\"m\":-9223372036854775809}}".to_string(),
        format!("{{\"event\":[{}, 1.7976931348623157e308, 1e-400]}}", "9".repeat(300)),
    ];
    for envelope in &accepted {
        assert!(value_accepts(envelope), "{envelope}");
        assert_eq!(split_events(envelope.as_bytes()).unwrap().len(), 1, "{envelope}");
    }
}

#[test]
fn json_errors_map_to_their_kinds() {
    let error = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap_err();
    assert_eq!(json_error_kind(&error(&"[".repeat(200))), HecBodyErrorKind::TooDeep);
    assert_eq!(json_error_kind(&error("1e999")), HecBodyErrorKind::NumberOutOfRange);
    assert_eq!(json_error_kind(&error("{\"a\"")), HecBodyErrorKind::InvalidJson);
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
