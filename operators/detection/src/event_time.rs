//! The event time of a JSON event as written by its source, for rule tests and corpus runs that read events from files.
//!
//! [`json_event_time`] looks at these fields, first usable wins:
//!
//! | field | who writes it |
//! |---|---|
//! | `@timestamp` | ECS, Logstash, Wazuh 5 |
//! | `timestamp` | Wazuh `alerts.json` |
//! | `time` | Splunk HEC envelopes, many JSON loggers |
//! | `Event.System.TimeCreated.#attributes.SystemTime` | evtx_dump JSON (SigmaHQ regression data) |
//! | `TimeCreated`, `SystemTime` | flattened Windows records |
//! | `UtcTime`, `Event.EventData.UtcTime` | Sysmon (`2025-11-27 07:40:10.132`, UTC) |
//! | `EventTime` | NXLog |
//!
//! Text values are RFC 3339, Wazuh's `2024-03-01T10:00:00.000+0000`, or a time without a
//! zone (`2025-11-27 07:40:10.132`, `T` or space), read as UTC. Numbers are Unix seconds
//! (HEC; fractions allowed), or milliseconds when larger than 10^11.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

/// The fields [`json_event_time`] reads, in order; a path of object keys each.
pub const TIME_FIELDS: [&[&str]; 9] = [
    &["@timestamp"],
    &["timestamp"],
    &["time"],
    &["Event", "System", "TimeCreated", "#attributes", "SystemTime"],
    &["TimeCreated"],
    &["SystemTime"],
    &["UtcTime"],
    &["Event", "EventData", "UtcTime"],
    &["EventTime"],
];

/// The event time of a JSON object (see the module documentation), `None` when no field holds
/// a time.
pub fn json_event_time(object: &Value) -> Option<DateTime<Utc>> {
    TIME_FIELDS.iter().find_map(|path| {
        let value = path.iter().try_fold(object, |value, key| value.get(key))?;
        match value {
            Value::String(text) => parse_time_text(text),
            Value::Number(number) => number.as_f64().and_then(from_unix_number),
            _ => None,
        }
    })
}

/// A time written as text: RFC 3339, Wazuh's offset without a colon, or zone-less (UTC).
pub fn parse_time_text(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(time) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|layout| NaiveDateTime::parse_from_str(text, layout).ok())
        .map(|naive| Utc.from_utc_datetime(&naive))
}

fn from_unix_number(number: f64) -> Option<DateTime<Utc>> {
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let millis = if number > 1e11 { number } else { number * 1_000.0 };
    DateTime::from_timestamp_millis(millis as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn millis(value: Value) -> Option<i64> {
        json_event_time(&value).map(|time| time.timestamp_millis())
    }

    #[test]
    fn text_layouts() {
        let at = 1_709_287_200_000; // 2024-03-01T10:00:00Z
        assert_eq!(millis(json!({"@timestamp": "2024-03-01T10:00:00Z"})), Some(at));
        assert_eq!(millis(json!({"timestamp": "2024-03-01T10:00:00.250+0000"})), Some(at + 250));
        assert_eq!(millis(json!({"time": "2024-03-01T11:00:00+01:00"})), Some(at));
        assert_eq!(millis(json!({"UtcTime": "2024-03-01 10:00:00.132"})), Some(at + 132));
        assert_eq!(millis(json!({"EventTime": "2024-03-01T10:00:01"})), Some(at + 1_000));
    }

    #[test]
    fn numbers_are_seconds_or_milliseconds() {
        assert_eq!(millis(json!({"time": 1_709_287_200.5})), Some(1_709_287_200_500));
        assert_eq!(millis(json!({"time": 1_709_287_200_000u64})), Some(1_709_287_200_000));
    }

    #[test]
    fn evtx_dump_records_use_the_system_time_and_the_order_is_kept() {
        let record = json!({"Event": {"System": {"TimeCreated": {"#attributes": {"SystemTime": "2025-11-27T07:40:10.165324Z"}}},
            "EventData": {"UtcTime": "2025-11-27 07:40:10.132"}}});
        assert_eq!(json_event_time(&record).unwrap().to_rfc3339(), "2025-11-27T07:40:10.165324+00:00");
        let both = json!({"timestamp": "2024-03-01T10:00:00Z", "@timestamp": "2024-03-01T09:00:00Z"});
        assert_eq!(millis(both), Some(1_709_283_600_000));
    }

    #[test]
    fn unusable_values_fall_through_and_nothing_is_none() {
        assert_eq!(millis(json!({"timestamp": "{timestamp}", "time": 1_709_287_200})), Some(1_709_287_200_000));
        assert_eq!(millis(json!({"EventID": 4625})), None);
        assert_eq!(millis(json!({"time": true})), None);
    }
}
