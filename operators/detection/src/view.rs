//! The field view of a normalised [`Event`] that rsigma's matchers see.
//!
//! A field name is looked up, in order, as:
//! 1. a key of `Event.fields` (the source's own flattened names: `data.srcip`,
//!    `Event.EventData.Image`, `appname`);
//! 2. for Wazuh events, the Wazuh spelling of a Windows field: `data.win.eventdata.Image` and
//!    `data.win.system.EventID` are found as `data.win.eventdata.image` and
//!    `data.win.system.eventID` (Wazuh's eventchannel decoder lower-cases the first letter);
//! 3. for evtx_dump-style records, an `Event.EventData.X` that is not there is looked up as
//!    `Event.UserData.<element>.X`: events such as WMI-Activity 5858 carry their data in a
//!    `UserData` element whose name varies by event;
//! 4. the event's top-level attributes, unless a field of that name exists: `host`, `message`,
//!    `category`, `severity`, `source.kind`, `source.name`.
//!
//! Wazuh escapes backslashes in Windows event data (`C:\\Windows\\...` with two backslashes);
//! values under `data.win.` are seen with single backslashes, as the event log wrote them.
//! Keyword (field-less) detections search every string field plus `message`.

use std::borrow::Cow;

use rsigma_eval::{Event as SigmaEvent, EventValue};
use securewatch_schemas::{Event, FieldValue, SourceKind};
use serde_json::{Map, Value};

/// A borrowed view of an [`Event`] implementing rsigma's [`rsigma_eval::Event`].
#[derive(Clone, Copy, Debug)]
pub struct EventView<'a> {
    event: &'a Event,
    wazuh: bool,
}

const WAZUH_WINDOWS_PREFIX: &str = "data.win.";
const EVTX_EVENTDATA_PREFIX: &str = "Event.EventData.";
const EVTX_USERDATA_PREFIX: &str = "Event.UserData.";

impl<'a> EventView<'a> {
    /// The view of `event`.
    pub fn new(event: &'a Event) -> EventView<'a> {
        EventView { event, wazuh: event.source.kind == SourceKind::Wazuh }
    }

    fn field(&self, path: &str) -> Option<(&'a str, &'a FieldValue)> {
        if let Some((key, value)) = self.event.fields.get_key_value(path) {
            return Some((key.as_str(), value));
        }
        if let Some(name) = path.strip_prefix(EVTX_EVENTDATA_PREFIX) {
            return self.user_data(name);
        }
        if self.wazuh && path.starts_with(WAZUH_WINDOWS_PREFIX) {
            let (parent, leaf) = path.rsplit_once('.')?;
            let mut chars = leaf.chars();
            let first = chars.next()?;
            if first.is_ascii_uppercase() {
                let wazuh_name = format!("{parent}.{}{}", first.to_ascii_lowercase(), chars.as_str());
                return self.event.fields.get_key_value(&wazuh_name).map(|(key, value)| (key.as_str(), value));
            }
        }
        None
    }

    /// `Event.UserData.<element>.<name>`, the first such key in order.
    fn user_data(&self, name: &str) -> Option<(&'a str, &'a FieldValue)> {
        let fields = &self.event.fields;
        fields
            .range::<str, _>((std::ops::Bound::Included(EVTX_USERDATA_PREFIX), std::ops::Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(EVTX_USERDATA_PREFIX))
            .find(|(key, _)| {
                key[EVTX_USERDATA_PREFIX.len()..]
                    .split_once('.')
                    .is_some_and(|(_, leaf)| leaf == name)
            })
            .map(|(key, value)| (key.as_str(), value))
    }

    fn unescape(&self, key: &str, text: &'a str) -> Cow<'a, str> {
        if self.wazuh && key.starts_with(WAZUH_WINDOWS_PREFIX) && text.contains("\\\\") {
            Cow::Owned(text.replace("\\\\", "\\"))
        } else {
            Cow::Borrowed(text)
        }
    }

    fn value(&self, key: &str, value: &'a FieldValue) -> EventValue<'a> {
        match value {
            FieldValue::Null => EventValue::Null,
            FieldValue::Bool(flag) => EventValue::Bool(*flag),
            FieldValue::Int(number) => EventValue::Int(*number),
            FieldValue::Float(number) => EventValue::Float(*number),
            FieldValue::Str(text) => EventValue::Str(self.unescape(key, text)),
            FieldValue::List(items) => {
                EventValue::Array(items.iter().map(|item| EventValue::Str(self.unescape(key, item))).collect())
            }
        }
    }

    fn attribute(&self, path: &str) -> Option<EventValue<'a>> {
        let event = self.event;
        let text = match path {
            "host" => event.host.as_deref()?,
            "message" => event.message.as_str(),
            "category" => event.category.as_deref()?,
            "severity" => event.severity.name(),
            "source.kind" => event.source.kind.as_str(),
            "source.name" => event.source.name.as_str(),
            _ => return None,
        };
        Some(EventValue::Str(Cow::Borrowed(text)))
    }

    fn strings(&self, visit: &mut dyn FnMut(&str) -> bool) -> bool {
        for (key, value) in &self.event.fields {
            let stop = match value {
                FieldValue::Str(text) => visit(&self.unescape(key, text)),
                FieldValue::List(items) => items.iter().any(|item| visit(&self.unescape(key, item))),
                _ => false,
            };
            if stop {
                return true;
            }
        }
        visit(&self.event.message)
    }
}

impl SigmaEvent for EventView<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        match self.field(path) {
            Some((key, value)) => Some(self.value(key, value)),
            None => self.attribute(path),
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.strings(&mut |text| pred(text))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        self.strings(&mut |text| {
            out.push(Cow::Owned(text.to_string()));
            false
        });
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.strings(&mut |text| {
            visit(text);
            false
        });
    }

    fn to_json(&self) -> Value {
        let mut object = Map::new();
        for (key, value) in &self.event.fields {
            let json = match value {
                FieldValue::Null => Value::Null,
                FieldValue::Bool(flag) => Value::Bool(*flag),
                FieldValue::Int(number) => Value::from(*number),
                FieldValue::Float(number) => Value::from(*number),
                FieldValue::Str(text) => Value::String(text.clone()),
                FieldValue::List(items) => Value::from(items.clone()),
            };
            object.insert(key.clone(), json);
        }
        object.entry("message").or_insert_with(|| Value::String(self.event.message.clone()));
        if let Some(host) = &self.event.host {
            object.entry("host").or_insert_with(|| Value::String(host.clone()));
        }
        Value::Object(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use securewatch_schemas::{EventId, Fields, Severity, Source};

    fn event(kind: SourceKind, fields: &[(&str, FieldValue)]) -> Event {
        let mut map = Fields::new();
        for (key, value) in fields {
            map.insert(key.to_string(), value.clone());
        }
        Event {
            tenant: Default::default(),
            id: EventId(1),
            time: Utc::now(),
            received: Utc::now(),
            source: Source { kind, name: "src".into(), peer: None },
            host: Some("web-01".into()),
            severity: Severity::Warning,
            category: Some("auth".into()),
            message: "hello world".into(),
            fields: map,
            raw: None,
        }
    }

    #[test]
    fn fields_shadow_attributes_and_attributes_fill_in() {
        let event = event(SourceKind::Hec, &[("host", "from-field".into()), ("n", FieldValue::Int(3))]);
        let view = EventView::new(&event);
        assert_eq!(view.get_field("host"), Some(EventValue::Str("from-field".into())));
        assert_eq!(view.get_field("message"), Some(EventValue::Str("hello world".into())));
        assert_eq!(view.get_field("source.kind"), Some(EventValue::Str("hec".into())));
        assert_eq!(view.get_field("severity"), Some(EventValue::Str("warning".into())));
        assert_eq!(view.get_field("n"), Some(EventValue::Int(3)));
        assert_eq!(view.get_field("missing"), None);
    }

    #[test]
    fn wazuh_windows_names_and_backslashes() {
        let event = event(
            SourceKind::Wazuh,
            &[("data.win.eventdata.image", "C:\\\\Windows\\\\System32\\\\cmd.exe".into())],
        );
        let view = EventView::new(&event);
        assert_eq!(
            view.get_field("data.win.eventdata.Image"),
            Some(EventValue::Str("C:\\Windows\\System32\\cmd.exe".into()))
        );
        assert!(view.any_string_value(&|text| text == "C:\\Windows\\System32\\cmd.exe"));

        let other = event_kind_hec_with_same_field();
        let view = EventView::new(&other);
        assert_eq!(view.get_field("data.win.eventdata.Image"), None, "only Wazuh events get the Wazuh spelling");
    }

    fn event_kind_hec_with_same_field() -> Event {
        event(SourceKind::Hec, &[("data.win.eventdata.image", "x".into())])
    }

    #[test]
    fn evtx_user_data_stands_in_for_event_data() {
        let event = event(
            SourceKind::File,
            &[
                ("Event.UserData.Operation_ClientFailure.Operation", "op".into()),
                ("Event.UserData.Operation_ClientFailure.Deep.Operation", "too deep".into()),
                ("Event.EventData.Image", "img".into()),
            ],
        );
        let view = EventView::new(&event);
        assert_eq!(view.get_field("Event.EventData.Operation"), Some(EventValue::Str("op".into())));
        assert_eq!(view.get_field("Event.EventData.Image"), Some(EventValue::Str("img".into())));
        assert_eq!(view.get_field("Event.EventData.Deep"), None);
    }

    #[test]
    fn keywords_search_lists_and_message() {
        let event = event(SourceKind::Syslog, &[("tags", FieldValue::List(vec!["a".into(), "needle".into()]))]);
        let view = EventView::new(&event);
        assert!(view.any_string_value(&|text| text == "needle"));
        assert!(view.any_string_value(&|text| text.contains("world")));
        assert!(!view.any_string_value(&|text| text == "absent"));
        assert_eq!(view.all_string_values().len(), 3);
    }
}
