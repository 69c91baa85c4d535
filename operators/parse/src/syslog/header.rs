//! The front of a syslog header that we read ourselves: PRI, Cisco prefixes and legacy timestamps.
//!
//! `syslog_loose` requires an RFC 3164 timestamp of one of three exact shapes. Real devices send
//! more: fractional seconds, a `UTC` suffix, Cisco sequence numbers (`123: `) and clock-state
//! markers (`*`, `.`), an RFC 3339 timestamp with nothing after it. This module reads all of
//! them, so the crate only ever sees a canonical RFC 3339 timestamp (see `legacy.rs`).

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc,
};

/// The highest valid PRI: facility 23 (local7), severity 7 (debug).
const MAX_PRI: u8 = 191;

/// What the start of a message says about its PRI.
#[derive(Debug, PartialEq)]
pub(super) enum PriPart<'a> {
    /// `<N>` with 0 ≤ N ≤ 191, and the text after it.
    Present(u8, &'a str),
    /// No `<` at the start: the whole text follows.
    Absent(&'a str),
    /// Starts with `<` but is no valid PRI (not 1–3 digits, no `>`, above 191).
    Invalid,
}

/// Splits off the PRI (`<N>`).
///
/// `syslog_loose` reads the PRI as a `u8` and silently treats `<200>` or `<999>` as "no PRI", so
/// the whole header then fails to parse or, worse, parses with a made-up facility; we validate
/// the range ourselves.
pub(super) fn split_pri(text: &str) -> PriPart<'_> {
    let Some(after_bracket) = text.strip_prefix('<') else {
        return PriPart::Absent(text);
    };
    let digit_count = after_bracket.bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=3).contains(&digit_count) {
        return PriPart::Invalid;
    }
    let (digits, rest) = after_bracket.split_at(digit_count);
    match (digits.parse::<u8>(), rest.strip_prefix('>')) {
        (Ok(value), Some(rest)) if value <= MAX_PRI => PriPart::Present(value, rest),
        _ => PriPart::Invalid,
    }
}

/// True when the text after the PRI starts like RFC 5424: `VERSION SP` then a timestamp or `-`.
pub(super) fn looks_like_rfc5424(text: &str) -> bool {
    let bytes = text.as_bytes();
    let version_digits = bytes.iter().take_while(|byte| byte.is_ascii_digit()).count();
    if !(1..=2).contains(&version_digits) || bytes[0] == b'0' {
        return false;
    }
    let Some(after_version) = text.get(version_digits..).and_then(|rest| rest.strip_prefix(' '))
    else {
        return false;
    };
    let after = after_version.as_bytes();
    let nil_timestamp =
        after.first() == Some(&b'-') && after.get(1).is_none_or(|byte| *byte == b' ');
    let dated = after.len() > 4 && after[..4].iter().all(u8::is_ascii_digit) && after[4] == b'-';
    nil_timestamp || dated
}

/// The legacy (RFC 3164 and vendor) header read up to the end of the timestamp.
#[derive(Debug, PartialEq)]
pub(super) struct LegacyHeader<'a> {
    /// Cisco's message sequence number (`<189>123: ...`), when present.
    pub sequence: Option<u64>,
    /// The timestamp with its offset (UTC unless the message gave one).
    pub timestamp: DateTime<FixedOffset>,
    /// Everything after the timestamp (and its optional trailing colon), untrimmed.
    pub rest: &'a str,
}

/// Reads `[SEQ: ][*|.]TIMESTAMP[:]` at the start of `text` (leading blanks skipped).
///
/// Timestamps: `Mmm d hh:mm:ss`, `Mmm d yyyy hh:mm:ss`, each with optional fractional seconds
/// and an optional ` UTC`/` GMT` suffix, or an RFC 3339 timestamp. A timestamp without a year
/// or without an offset is resolved by [`resolve_legacy_time`]'s rule. `None` when the text
/// does not start with a timestamp.
pub(super) fn scan_legacy_header(text: &str, received: DateTime<Utc>) -> Option<LegacyHeader<'_>> {
    let text = text.trim_start();
    if let Some((timestamp, rest)) = scan_marked_timestamp(text, received) {
        return Some(LegacyHeader { sequence: None, timestamp, rest });
    }
    // Cisco IOS: `123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: ...`.
    let digit_count = text.bytes().take_while(u8::is_ascii_digit).count();
    let sequence = text.get(..digit_count)?.parse::<u64>().ok()?;
    let after_sequence = text.get(digit_count..)?.strip_prefix(':')?;
    if !after_sequence.starts_with([' ', '\t']) {
        return None;
    }
    let (timestamp, rest) = scan_marked_timestamp(after_sequence.trim_start(), received)?;
    Some(LegacyHeader { sequence: Some(sequence), timestamp, rest })
}

/// A timestamp optionally preceded by Cisco's `*` (clock not synchronised) or `.` (clock was
/// synchronised but lost its source) marker.
fn scan_marked_timestamp(
    text: &str,
    received: DateTime<Utc>,
) -> Option<(DateTime<FixedOffset>, &str)> {
    let unmarked = text.strip_prefix(['*', '.']).unwrap_or(text);
    scan_timestamp(unmarked, received)
}

fn scan_timestamp(text: &str, received: DateTime<Utc>) -> Option<(DateTime<FixedOffset>, &str)> {
    let bytes = text.as_bytes();
    let starts_with_year =
        bytes.len() > 4 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-';
    if starts_with_year {
        scan_rfc3339(text)
    } else {
        scan_bsd_timestamp(text, received)
    }
}

/// An RFC 3339 / ISO 8601 timestamp up to the next blank; without an offset it is UTC.
fn scan_rfc3339(text: &str) -> Option<(DateTime<FixedOffset>, &str)> {
    let end = text.find([' ', '\t']).unwrap_or(text.len());
    let (token, rest) = text.split_at(end);
    // A colon may follow the timestamp, as after a BSD one; RFC 3339 offsets contain colons
    // too, so the token is tried whole first.
    let timestamp = parse_iso8601(token).or_else(|| parse_iso8601(token.strip_suffix(':')?))?;
    Some((timestamp, rest))
}

fn parse_iso8601(token: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(token).ok().or_else(|| {
        NaiveDateTime::parse_from_str(token, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|naive| naive.and_utc().fixed_offset())
    })
}

/// `Mmm d [yyyy] hh:mm:ss[.fff][ UTC|GMT][:]`, followed by a blank or the end of the text.
fn scan_bsd_timestamp(
    text: &str,
    received: DateTime<Utc>,
) -> Option<(DateTime<FixedOffset>, &str)> {
    let mut cursor = Cursor::new(text);
    let month = month_number(cursor.take(3)?)?;
    cursor.blanks(1)?;
    let day = cursor.number(1, 2)?;
    cursor.blanks(1)?;
    let year = cursor.year_then_blank();
    let hour = cursor.number(1, 2)?;
    cursor.literal(':')?;
    let minute = cursor.number(2, 2)?;
    cursor.literal(':')?;
    let second = cursor.number(2, 2)?;
    let nanos = match cursor.literal('.') {
        Some(()) => cursor.fraction_nanos()?,
        None => 0,
    };
    cursor.utc_suffix();
    // A colon right after the time is common (Cisco, rsyslog's date3/date5 cases).
    let _ = cursor.literal(':');
    let rest = cursor.rest();
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let time = time_of_day(hour, minute, second, nanos)?;
    let naive = match year {
        Some(year) => NaiveDate::from_ymd_opt(year, month, day)?.and_time(time),
        None => resolve_legacy_time(month, day, time, received)?,
    };
    Some((naive.and_utc().fixed_offset(), rest))
}

/// Resolves a timestamp that carries neither a year nor a timezone (RFC 3164's `Mmm dd hh:mm:ss`).
///
/// The rule: the time is read as UTC, and the year is the one that puts it closest to the time
/// the message was received, so a `Dec 31 23:59:59` message received on January 1st belongs to
/// the previous year and a `Jan  1 00:00:01` one received on December 31st to the next. Years up
/// to four away are tried, which also places `Feb 29` in the nearest leap year. `None` for a
/// day that exists in none of them (`Feb 30`).
pub(super) fn resolve_legacy_time(
    month: u32,
    day: u32,
    time: NaiveTime,
    received: DateTime<Utc>,
) -> Option<NaiveDateTime> {
    let received_year = received.year();
    (received_year - 4..=received_year + 4)
        .filter_map(|year| NaiveDate::from_ymd_opt(year, month, day))
        .map(|date| date.and_time(time))
        .min_by_key(|candidate| distance(candidate.and_utc(), received))
}

fn distance(a: DateTime<Utc>, b: DateTime<Utc>) -> TimeDelta {
    (a - b).abs()
}

/// A time of day; second 60 (a leap second) is kept as chrono's leap-second representation.
fn time_of_day(hour: u32, minute: u32, second: u32, nanos: u32) -> Option<NaiveTime> {
    if second == 60 {
        NaiveTime::from_hms_nano_opt(hour, minute, 59, nanos.checked_add(1_000_000_000)?)
    } else {
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
    }
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] =
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let position = MONTHS.iter().position(|month| month.eq_ignore_ascii_case(name))?;
    u32::try_from(position + 1).ok()
}

/// A forward-only reader over ASCII header text; it only ever stops on ASCII characters, so
/// every position is a char boundary.
struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor { text, position: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.position..).unwrap_or("")
    }

    fn peek_bytes(&self) -> &'a [u8] {
        self.rest().as_bytes()
    }

    /// `count` ASCII letters.
    fn take(&mut self, count: usize) -> Option<&'a str> {
        let bytes = self.peek_bytes();
        if bytes.len() < count || !bytes[..count].iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let taken = self.text.get(self.position..self.position + count)?;
        self.position += count;
        Some(taken)
    }

    /// At least `minimum` spaces or tabs.
    fn blanks(&mut self, minimum: usize) -> Option<()> {
        let count =
            self.peek_bytes().iter().take_while(|byte| matches!(byte, b' ' | b'\t')).count();
        self.position += count;
        (count >= minimum).then_some(())
    }

    /// A decimal number of `min_digits..=max_digits` digits, not followed by another digit.
    fn number(&mut self, min_digits: usize, max_digits: usize) -> Option<u32> {
        let count = self.peek_bytes().iter().take_while(|byte| byte.is_ascii_digit()).count();
        if !(min_digits..=max_digits).contains(&count) {
            return None;
        }
        let value = self.rest().get(..count)?.parse().ok()?;
        self.position += count;
        Some(value)
    }

    /// A four-digit year followed by blanks (`Mar 7 2008 19:06:53`); consumes nothing otherwise.
    fn year_then_blank(&mut self) -> Option<i32> {
        let bytes = self.peek_bytes();
        let is_year = bytes.len() > 4
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && matches!(bytes[4], b' ' | b'\t');
        if !is_year {
            return None;
        }
        let year = self.rest().get(..4)?.parse().ok()?;
        self.position += 4;
        self.blanks(1)?;
        Some(year)
    }

    fn literal(&mut self, expected: char) -> Option<()> {
        self.rest().starts_with(expected).then(|| self.position += expected.len_utf8())
    }

    /// Digits after a decimal point, as nanoseconds (digits beyond the ninth are ignored).
    fn fraction_nanos(&mut self) -> Option<u32> {
        let digits: &str = {
            let count = self.peek_bytes().iter().take_while(|byte| byte.is_ascii_digit()).count();
            self.rest().get(..count)?
        };
        if digits.is_empty() {
            return None;
        }
        self.position += digits.len();
        let significant = digits.get(..digits.len().min(9))?;
        let scale = 10u32.pow(u32::try_from(9 - significant.len()).ok()?);
        significant.parse::<u32>().ok()?.checked_mul(scale)
    }

    /// A ` UTC` or ` GMT` suffix, consumed only when a blank, a colon or the end follows it.
    fn utc_suffix(&mut self) {
        let rest = self.rest();
        let Some(after_blank) = rest.strip_prefix(' ') else { return };
        let zone = after_blank.get(..3).unwrap_or("");
        let after_zone = after_blank.get(3..).unwrap_or("x");
        let ends = after_zone.is_empty() || after_zone.starts_with([' ', '\t', ':']);
        if (zone.eq_ignore_ascii_case("UTC") || zone.eq_ignore_ascii_case("GMT")) && ends {
            self.position += 4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn received() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 15, 12, 0, 0).unwrap()
    }

    #[test]
    fn pri_is_validated() {
        assert_eq!(split_pri("<34>rest"), PriPart::Present(34, "rest"));
        assert_eq!(split_pri("<0>x"), PriPart::Present(0, "x"));
        assert_eq!(split_pri("<191>x"), PriPart::Present(191, "x"));
        assert_eq!(split_pri("<192>x"), PriPart::Invalid);
        assert_eq!(split_pri("<1234>x"), PriPart::Invalid);
        assert_eq!(split_pri("<>x"), PriPart::Invalid);
        assert_eq!(split_pri("<34 x"), PriPart::Invalid);
        assert_eq!(split_pri("Jun 1"), PriPart::Absent("Jun 1"));
    }

    #[test]
    fn rfc5424_shape() {
        assert!(looks_like_rfc5424("1 2003-10-11T22:14:15.003Z host"));
        assert!(looks_like_rfc5424("1 - host app - - -"));
        assert!(!looks_like_rfc5424("123: *Mar  1 18:46:11"));
        assert!(!looks_like_rfc5424("Oct 11 22:14:15 host"));
        assert!(!looks_like_rfc5424("1 -hello"));
        assert!(!looks_like_rfc5424("0 2003-10-11T22:14:15Z"));
        assert!(!looks_like_rfc5424(""));
    }

    #[test]
    fn year_closest_to_reception() {
        let new_year = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 30).unwrap();
        let december = NaiveTime::from_hms_opt(23, 59, 50).unwrap();
        let resolved = resolve_legacy_time(12, 31, december, new_year).unwrap();
        assert_eq!(resolved.year(), 2024);
        let new_years_eve = Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 0).unwrap();
        let resolved = resolve_legacy_time(1, 1, NaiveTime::MIN, new_years_eve).unwrap();
        assert_eq!(resolved.year(), 2025);
        let leap = resolve_legacy_time(2, 29, NaiveTime::MIN, received()).unwrap();
        assert_eq!(leap.year(), 2024);
        assert!(resolve_legacy_time(2, 30, NaiveTime::MIN, received()).is_none());
    }

    #[test]
    fn bsd_timestamp_variants() {
        let header = scan_legacy_header("Jun  9 08:07:06 host app: x", received()).unwrap();
        assert_eq!(header.timestamp, Utc.with_ymd_and_hms(2024, 6, 9, 8, 7, 6).unwrap());
        assert_eq!(header.rest, " host app: x");
        let header = scan_legacy_header("Mar 7 2008 19:06:53: example", received()).unwrap();
        assert_eq!(header.timestamp, Utc.with_ymd_and_hms(2008, 3, 7, 19, 6, 53).unwrap());
        assert_eq!(header.rest, " example");
        let header = scan_legacy_header("Jun  9 08:07:06.250 UTC: %X", received()).unwrap();
        assert_eq!(header.timestamp.timestamp_subsec_millis(), 250);
        assert_eq!(header.rest, " %X");
        assert!(scan_legacy_header("Jun  9 08:07", received()).is_none());
        assert!(scan_legacy_header("Jux  9 08:07:06 host", received()).is_none());
        assert!(scan_legacy_header("Jun  9 08:07:06x host", received()).is_none());
        assert!(scan_legacy_header("Jun 31 25:07:06 host", received()).is_none());
    }

    #[test]
    fn cisco_sequence_and_markers() {
        let header = scan_legacy_header("123: *Mar  1 18:46:11.123: %SYS-5", received()).unwrap();
        assert_eq!(header.sequence, Some(123));
        assert_eq!(header.timestamp.timestamp_subsec_millis(), 123);
        assert_eq!(header.rest, " %SYS-5");
        let header = scan_legacy_header(".Mar  1 18:46:11 r1", received()).unwrap();
        assert_eq!(header.sequence, None);
        assert!(scan_legacy_header("123: hello", received()).is_none());
    }

    #[test]
    fn rfc3339_in_legacy_header() {
        let header = scan_legacy_header("2010-08-30T23:00:05Z", received()).unwrap();
        assert_eq!(header.timestamp, Utc.with_ymd_and_hms(2010, 8, 30, 23, 0, 5).unwrap());
        assert_eq!(header.rest, "");
        let header = scan_legacy_header("2010-08-30T23:00:05.5+02:00 h", received()).unwrap();
        assert_eq!(header.timestamp.offset().local_minus_utc(), 7200);
        let header = scan_legacy_header("2010-08-30T23:00:05 h", received()).unwrap();
        assert_eq!(header.timestamp, Utc.with_ymd_and_hms(2010, 8, 30, 23, 0, 5).unwrap());
        assert!(scan_legacy_header("2010-08-30 rest", received()).is_none());
    }
}
