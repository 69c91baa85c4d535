//! RFC 5424 messages through `syslog_loose`, with RFC-exact structured-data unescaping and BOM removal.

use chrono::Utc;
use syslog_loose::{Protocol, StructuredElement, Variant};

use super::SyslogMessage;

/// Parses the text after the PRI as RFC 5424; `None` when the header is not valid RFC 5424.
pub(super) fn parse(text: &str) -> Option<SyslogMessage> {
    // RFC 5424 timestamps always carry their year, so the year callback is never called.
    let parsed =
        syslog_loose::parse_message_with_year_exact_tz(text, |_| 1970, Some(Utc), Variant::RFC5424)
            .ok()?;
    let Protocol::RFC5424(version) = parsed.protocol else {
        return None;
    };
    let structured_data = flatten_structured_data(&parsed.structured_data);
    Some(SyslogMessage {
        version: Some(version),
        sequence: None,
        timestamp: parsed.timestamp.map(|timestamp| timestamp.to_utc()),
        hostname: parsed.hostname.map(str::to_string),
        appname: parsed.appname.map(str::to_string),
        procid: parsed.procid.map(|procid| procid.to_string()),
        msgid: parsed.msgid.map(str::to_string),
        structured_data,
        message: strip_bom(parsed.msg).to_string(),
    })
}

/// Every SD-PARAM as (`<SD-ID>.<PARAM-NAME>`, unescaped value), in message order.
pub(super) fn flatten_structured_data(
    elements: &[StructuredElement<&str>],
) -> Vec<(String, String)> {
    elements
        .iter()
        .flat_map(|element| {
            element.params.iter().map(move |(name, value)| {
                (format!("{}.{}", element.id, name), unescape_param_value(value))
            })
        })
        .collect()
}

/// RFC 5424 §6.4: a MSG in UTF-8 starts with a byte-order mark, which is not part of the text.
/// `syslog_loose` leaves it in the message.
fn strip_bom(message: &str) -> &str {
    message.strip_prefix('\u{feff}').unwrap_or(message)
}

/// RFC 5424 §6.3.3: inside a PARAM-VALUE, `\"`, `\\` and `\]` stand for the character itself and
/// a backslash before any other character is kept as it is.
///
/// `syslog_loose` hands out the value still escaped, and its own `params()` unescaper also turns
/// `\n` into a line break, which the RFC does not define, so we unescape here.
fn unescape_param_value(raw: &str) -> String {
    let mut value = String::with_capacity(raw.len());
    let mut characters = raw.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            value.push(character);
            continue;
        }
        match characters.next() {
            Some(escaped @ ('"' | '\\' | ']')) => value.push(escaped),
            Some(other) => {
                value.push('\\');
                value.push(other);
            }
            None => value.push('\\'),
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_only_what_the_rfc_defines() {
        assert_eq!(unescape_param_value(r#"a\"b\\c\]d"#), r#"a"b\c]d"#);
        assert_eq!(unescape_param_value(r"C:\temp\new"), r"C:\temp\new");
        assert_eq!(unescape_param_value(r"trailing\"), r"trailing\");
        assert_eq!(unescape_param_value("plain"), "plain");
    }
}
