//! RFC 3164 and vendor variants: our own header scan, then `syslog_loose` for HOSTNAME, TAG and MSG.

use chrono::{DateTime, FixedOffset, Utc};
use syslog_loose::Variant;

use super::header::scan_legacy_header;
use super::rfc5424::flatten_structured_data;
use super::SyslogMessage;

/// Parses the text after the PRI as a legacy message; `None` when it does not start with a
/// timestamp (see [`scan_legacy_header`] for the accepted shapes).
pub(super) fn parse(text: &str, received: DateTime<Utc>) -> Option<SyslogMessage> {
    let header = scan_legacy_header(text, received)?;
    let mut message = SyslogMessage {
        sequence: header.sequence,
        timestamp: Some(header.timestamp.to_utc()),
        ..SyslogMessage::default()
    };
    split_host_tag_and_message(header.timestamp, header.rest, &mut message);
    Some(message)
}

/// Fills hostname, tag and message from the text that follows the timestamp.
///
/// `syslog_loose` has no entry point for "the rest of an RFC 3164 header", and its timestamp
/// reader knows fewer shapes than [`scan_legacy_header`]; so we hand it the same message with the
/// timestamp rewritten as RFC 3339 (a shape its RFC 3164 parser accepts) and keep our own
/// timestamp. Its host/tag heuristics (a single `app[pid]` word is a tag, two spaces end the
/// header) then apply unchanged.
fn split_host_tag_and_message(
    timestamp: DateTime<FixedOffset>,
    after_timestamp: &str,
    message: &mut SyslogMessage,
) {
    if after_timestamp.trim().is_empty() {
        return;
    }
    // Its RFC 3339 reader ends the timestamp at a space, so a tab after the time becomes one.
    let after_timestamp = match after_timestamp.strip_prefix('\t') {
        Some(rest) => format!(" {rest}"),
        None if after_timestamp.starts_with(' ') => after_timestamp.to_string(),
        None => format!(" {after_timestamp}"),
    };
    let canonical = format!("{}{after_timestamp}", timestamp.to_rfc3339());
    let parsed = match syslog_loose::parse_message_with_year_exact_tz(
        &canonical,
        // The timestamp is RFC 3339 and carries its year; this is never called.
        |_| 1970,
        Some(Utc),
        Variant::RFC3164,
    ) {
        Ok(parsed) => parsed,
        Err(_) => {
            message.message = after_timestamp.trim().to_string();
            return;
        }
    };
    let mut hostname = parsed.hostname;
    let mut appname = parsed.appname;
    // RFC 3164 §4.1.2 ends HOSTNAME with a space and TAG with `:` or `[`, so a single word
    // followed directly by `:` (`Oct 11 22:14:15 su: ...`) is a tag, not a host.
    // `syslog_loose` reads it as the hostname.
    if appname.is_none() {
        if let Some(word) = hostname.filter(|word| followed_by_colon(&canonical, word)) {
            appname = Some(word);
            hostname = None;
        }
    }
    message.hostname = hostname.map(str::to_string);
    message.appname = appname.map(str::to_string);
    message.procid = parsed.procid.map(|procid| procid.to_string());
    message.structured_data = flatten_structured_data(&parsed.structured_data);
    message.message = parsed.msg.to_string();
}

/// True when `part` (a slice of `whole`) is immediately followed by `:` in `whole`.
fn followed_by_colon(whole: &str, part: &str) -> bool {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    start
        .checked_add(part.len())
        .and_then(|end| whole.get(end..))
        .is_some_and(|after| after.starts_with(':'))
}
