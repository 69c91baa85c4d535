//! HEC `time` values: epoch seconds with an optional fraction, as a JSON number or a string.

use chrono::{DateTime, Utc};

const NANOS_PER_SECOND: i128 = 1_000_000_000;
/// Beyond this many seconds from the epoch chrono cannot represent the time (about ±262,000
/// years), so larger values are refused before any arithmetic.
const MAX_ABS_SECONDS: f64 = 8.0e12;

/// Parses HEC's `time`: epoch seconds such as `1700000000`, `1700000000.123456` or `"1.7e9"`.
///
/// Plain decimals are read exactly to the nanosecond (digits past the ninth are dropped);
/// exponent forms go through `f64`. `None` for anything else, for NaN / infinity, and for
/// times outside chrono's range.
pub fn parse_epoch_seconds(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let plain_decimal = !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().all(|byte| byte.is_ascii_digit())
        && fraction.bytes().all(|byte| byte.is_ascii_digit());
    if plain_decimal {
        from_decimal_digits(negative, whole, fraction)
    } else if text.contains(['e', 'E']) {
        let seconds: f64 = text.parse().ok()?;
        from_float_seconds(seconds)
    } else {
        None
    }
}

/// Parses a JSON number as epoch seconds (through its shortest text form, so decimals stay exact).
pub fn epoch_from_number(number: &serde_json::Number) -> Option<DateTime<Utc>> {
    parse_epoch_seconds(&number.to_string())
}

fn from_decimal_digits(negative: bool, whole: &str, fraction: &str) -> Option<DateTime<Utc>> {
    let whole = whole.trim_start_matches('0');
    // 14 digits already exceed chrono's range; refusing longer input avoids any overflow.
    if whole.len() > 14 {
        return None;
    }
    let seconds: i128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut nanos: i128 = 0;
    for position in 0..9 {
        let digit = fraction.as_bytes().get(position).map_or(0, |byte| byte - b'0');
        nanos = nanos * 10 + i128::from(digit);
    }
    let magnitude = seconds * NANOS_PER_SECOND + nanos;
    from_total_nanos(if negative { -magnitude } else { magnitude })
}

fn from_float_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() || seconds.abs() > MAX_ABS_SECONDS {
        return None;
    }
    // In range by the check above: at most 8e21, well inside i128.
    from_total_nanos((seconds * 1e9).round() as i128)
}

fn from_total_nanos(total: i128) -> Option<DateTime<Utc>> {
    let seconds = i64::try_from(total.div_euclid(NANOS_PER_SECOND)).ok()?;
    let nanos = u32::try_from(total.rem_euclid(NANOS_PER_SECOND)).ok()?;
    DateTime::from_timestamp(seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64, nanos: u32) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(seconds, nanos)
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_epoch_seconds("1700000000"), at(1_700_000_000, 0));
        assert_eq!(parse_epoch_seconds("1700000000.123"), at(1_700_000_000, 123_000_000));
        assert_eq!(
            parse_epoch_seconds(" 1700000000.123456789999 "),
            at(1_700_000_000, 123_456_789)
        );
        assert_eq!(parse_epoch_seconds("+1.5"), at(1, 500_000_000));
        assert_eq!(parse_epoch_seconds(".25"), at(0, 250_000_000));
        assert_eq!(parse_epoch_seconds("7."), at(7, 0));
        assert_eq!(parse_epoch_seconds("-1.5"), at(-2, 500_000_000));
        assert_eq!(parse_epoch_seconds("00001700000000"), at(1_700_000_000, 0));
    }

    #[test]
    fn exponent_forms_go_through_floats() {
        assert_eq!(parse_epoch_seconds("1.7e9"), at(1_700_000_000, 0));
        assert_eq!(parse_epoch_seconds("17E8"), at(1_700_000_000, 0));
        assert_eq!(parse_epoch_seconds("1e300"), None);
    }

    #[test]
    fn rejects_what_is_not_a_time() {
        for text in ["", " ", ".", "-", "abc", "12:00", "1.2.3", "0x10", "NaN", "inf", "1e", "1 2"]
        {
            assert_eq!(parse_epoch_seconds(text), None, "{text:?}");
        }
        assert_eq!(parse_epoch_seconds("99999999999999999999"), None);
        assert_eq!(parse_epoch_seconds("9000000000000"), None, "beyond chrono's range");
    }

    #[test]
    fn json_numbers_use_their_shortest_text() {
        let number: serde_json::Number = serde_json::from_str("1700000000.25").unwrap();
        assert_eq!(epoch_from_number(&number), at(1_700_000_000, 250_000_000));
        let number: serde_json::Number = serde_json::from_str("1700000000").unwrap();
        assert_eq!(epoch_from_number(&number), at(1_700_000_000, 0));
    }
}
