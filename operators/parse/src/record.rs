//! Normalisation of a raw record: the dispatch to each parser and the reasons a record fails.

use securewatch_schemas::{Event, EventId, RawRecord, RecordMeta, SourceKind};

/// Why a record could not become an event. [`ParseError::reason`] is the metrics label.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The body is not the JSON its kind requires; the parser's message.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// A field the kind requires is absent.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A field is present with a value the kind does not accept.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// Nothing but whitespace.
    #[error("record is empty")]
    Empty,
    /// No parser for this kind of record.
    #[error("record kind {0} has no parser in this build")]
    Unsupported(SourceKind),
}

impl ParseError {
    /// A short, stable label for metrics (`rejected{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::InvalidJson(_) => "invalid_json",
            ParseError::MissingField(_) => "missing_field",
            ParseError::InvalidField { .. } => "invalid_field",
            ParseError::Empty => "empty",
            ParseError::Unsupported(_) => "unsupported",
        }
    }
}

/// Syslog, with Wazuh's JSON syslog output (`ossec: {alert JSON}`) mapped like an alerts.json
/// line, so a manager's `<syslog_output>` can feed the syslog source. A message that only looks
/// like one (invalid JSON, no `rule`) stays a syslog event, with the reason in `parse_warning`.
/// A message from a TLS client with a certificate keeps its subject as `source.peer_identity`.
fn normalise_syslog(record: &RawRecord) -> Event {
    let mut event = syslog_or_wazuh(record);
    if let RecordMeta::TlsPeer { identity } = &record.meta {
        event.fields.insert(PEER_IDENTITY_FIELD.into(), identity.to_string().into());
    }
    event
}

/// The field holding the subject of the client certificate a message came with (syslog over TLS).
pub const PEER_IDENTITY_FIELD: &str = "source.peer_identity";

fn syslog_or_wazuh(record: &RawRecord) -> Event {
    let mut event = crate::syslog::normalise(record);
    let from_wazuh = event.fields.get("appname").and_then(|app| app.as_str()) == Some("ossec");
    if from_wazuh && event.message.trim_start().starts_with('{') {
        match crate::wazuh::from_syslog_message(record, &event.message) {
            Ok(alert) => return alert,
            Err(error) => {
                let warning = format!("ossec message is not a Wazuh alert: {error}");
                event.fields.insert("parse_warning".into(), warning.into());
            }
        }
    }
    event
}

/// Turns one raw record into an event. Syslog never fails (an unparseable message is kept
/// with its raw text and a `parse_error` field); HEC and Wazuh records that are not valid
/// give an error, which the caller dead-letters with its reason.
///
/// The event takes the record's tenant. Outside the `default` tenant the id also hashes the
/// tenant, so two tenants sending the same bytes never collapse into one stored event (ids of
/// `default` events are unchanged).
pub fn normalise(record: &RawRecord) -> Result<Event, ParseError> {
    let mut event = normalise_for_kind(record)?;
    if !event.tenant.is_default() {
        let id = event.id.to_bytes();
        event.id = EventId::from_parts([b"tenant".as_slice(), event.tenant.as_bytes(), &id]);
    }
    Ok(event)
}

fn normalise_for_kind(record: &RawRecord) -> Result<Event, ParseError> {
    match (&record.kind, &record.meta) {
        (SourceKind::Syslog, _) => Ok(normalise_syslog(record)),
        (SourceKind::Hec, RecordMeta::HecEvent { meta, index }) => {
            crate::hec::normalise_event(record, meta, *index)
        }
        (SourceKind::Hec, RecordMeta::HecRaw { meta, index }) => {
            Ok(crate::hec::normalise_raw(record, meta, *index))
        }
        (SourceKind::Wazuh, _) => crate::wazuh::normalise(record),
        (kind, _) => Err(ParseError::Unsupported(*kind)),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn syslog(body: &str) -> RawRecord {
        RawRecord {
            tenant: Default::default(),
            kind: SourceKind::Syslog,
            source_name: "syslog".into(),
            peer: Some("192.0.2.10:514".into()),
            received: DateTime::from_timestamp(1_709_287_300, 0).unwrap_or_default(),
            body: body.as_bytes().to_vec(),
            meta: RecordMeta::None,
        }
    }

    #[test]
    fn wazuh_json_syslog_output_becomes_a_wazuh_mapped_event() {
        let alert = r#"{"timestamp":"2024-03-01T10:00:00.000+0000","rule":{"level":10,"description":"sshd: brute force","id":"5712","groups":["sshd"]},"agent":{"id":"001","name":"web-01"},"manager":{"name":"mgr"},"id":"1709287200.1","data":{"srcip":"203.0.113.9"}}"#;
        let event = normalise(&syslog(&format!("<33>Mar  1 10:00:01 mgr ossec: {alert}"))).unwrap();
        assert_eq!(event.source.kind, SourceKind::Syslog);
        assert_eq!(event.host.as_deref(), Some("web-01"));
        assert_eq!(event.message, "sshd: brute force");
        assert_eq!(event.fields["data.srcip"].as_str(), Some("203.0.113.9"));
        assert_eq!(event.severity, securewatch_schemas::Severity::Error);
    }

    #[test]
    fn broken_ossec_json_stays_a_syslog_event_with_a_warning() {
        let event = normalise(&syslog("<33>Mar  1 10:00:01 mgr ossec: {\"rule\": oops")).unwrap();
        assert_eq!(event.fields["appname"].as_str(), Some("ossec"));
        assert!(event.fields["parse_warning"].as_text().contains("not a Wazuh alert"));
    }

    #[test]
    fn the_tls_client_identity_is_kept_as_a_field() {
        let mut record = syslog("<13>Mar  1 10:00:01 web sshd: hi");
        let plain = normalise(&record).unwrap();
        assert!(!plain.fields.contains_key(PEER_IDENTITY_FIELD));
        record.meta = RecordMeta::TlsPeer { identity: "CN=relay.example.com".into() };
        let event = normalise(&record).unwrap();
        assert_eq!(event.fields[PEER_IDENTITY_FIELD].as_str(), Some("CN=relay.example.com"));
        assert_eq!(event.id, plain.id, "the identity does not change the id");
    }

    #[test]
    fn events_take_the_record_tenant_and_keep_default_ids() {
        let plain = normalise(&syslog("<13>Mar  1 10:00:01 web sshd: hi")).unwrap();
        assert!(plain.tenant.is_default());
        let mut record = syslog("<13>Mar  1 10:00:01 web sshd: hi");
        record.tenant = securewatch_schemas::Tenant::parse("acme").unwrap();
        let acme = normalise(&record).unwrap();
        assert_eq!(acme.tenant.as_str(), "acme");
        assert_ne!(acme.id, plain.id, "the same bytes of two tenants are two events");
        assert_eq!(acme.message, plain.message);
    }

    #[test]
    fn other_kinds_without_parser_are_unsupported() {
        let mut record = syslog("x");
        record.kind = SourceKind::Kafka;
        assert_eq!(normalise(&record), Err(ParseError::Unsupported(SourceKind::Kafka)));
    }
}
