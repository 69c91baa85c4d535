//! Syslog conformance: parse rates over the loghub and Dynatrace samples, and rsyslog's expected parses.
//!
//! A line counts as parsed when the parser reports no `parse_error` and the event time comes
//! from the line. Every record is given a receive time with a 123 µs fraction that no sample
//! timestamp has, so `time != received` tells a timestamp read from the line from the fallback.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use securewatch_connectors::sources::syslog::splitter::{split_frames, Frame};
use securewatch_parse::syslog::{normalise, parse_failure};
use securewatch_schemas::{RawRecord, RecordMeta};
use securewatch_schemas::{Event, SourceKind};

/// Share of loghub + Dynatrace lines that must parse.
const TARGET_RATE: f64 = 0.99;
/// The frame limit used for the octet-counted sample (the source's default).
const MAX_MESSAGE_BYTES: usize = 65_536;
/// Unparsed examples printed per file.
const EXAMPLES_PER_FILE: usize = 3;
/// The peer of every conformance record; rsyslog's `~H` (its own hostname) maps onto its IP.
const PEER: &str = "127.0.0.1:514";
const PEER_HOST: &str = "127.0.0.1";

/// Prints the report; `Ok(true)` when at least 99% of all loghub and Dynatrace lines parse.
pub fn run(corpus: &Path) -> anyhow::Result<bool> {
    let root = corpus.join("syslog");
    let mut total = Tally::default();
    for file in loghub_files(&root.join("loghub"))? {
        let thunderbird = file.to_string_lossy().contains("Thunderbird");
        let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let tally = tally_lines(&bytes, thunderbird);
        tally.print(&display_name(&root, &file));
        total.add(&tally);
    }
    let dynatrace = root.join("dynatrace-otel-testdata");
    for name in ["RFC3164", "RFC5424"] {
        let file = dynatrace.join(name);
        let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let tally = tally_lines(&bytes, false);
        tally.print(&display_name(&root, &file));
        total.add(&tally);
    }
    let octet_file = dynatrace.join("rfc6587-octet-counting");
    let bytes =
        fs::read(&octet_file).with_context(|| format!("reading {}", octet_file.display()))?;
    let tally = tally_octet_counted(&bytes);
    tally.print(&format!("{} (RFC 6587 framing)", display_name(&root, &octet_file)));
    total.add(&tally);
    println!(
        "syslog total (loghub + dynatrace): {} of {} lines parsed, {:.2}% (target {:.0}%)",
        total.parsed,
        total.lines,
        total.rate() * 100.0,
        TARGET_RATE * 100.0
    );
    compare_rsyslog_cases(&root.join("rsyslog-testsuites"))?;
    Ok(total.lines > 0 && total.rate() >= TARGET_RATE)
}

/// Parse counts of one file, with a few unparsed examples.
#[derive(Default)]
struct Tally {
    lines: usize,
    parsed: usize,
    examples: Vec<String>,
}

impl Tally {
    fn record(&mut self, line_number: usize, event: &Event) {
        self.lines += 1;
        let failure = parse_failure(event);
        if failure.is_none() && event.time != event.received {
            self.parsed += 1;
        } else if self.examples.len() < EXAMPLES_PER_FILE {
            let reason = failure.unwrap_or("no timestamp in the line");
            let text: String = event.raw.as_deref().unwrap_or("").chars().take(100).collect();
            self.examples.push(format!("line {line_number}: {reason}: {text}"));
        }
    }

    fn add(&mut self, other: &Tally) {
        self.lines += other.lines;
        self.parsed += other.parsed;
    }

    fn rate(&self) -> f64 {
        if self.lines == 0 {
            0.0
        } else {
            self.parsed as f64 / self.lines as f64
        }
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<60} lines {:>5}  parsed {:>5}  rate {:>7.2}%",
            self.lines,
            self.parsed,
            self.rate() * 100.0
        );
        for example in &self.examples {
            println!("    not parsed: {example}");
        }
    }
}

/// Every `*.log` below `loghub/`, sorted.
fn loghub_files(loghub: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(loghub).with_context(|| format!("listing {}", loghub.display()))? {
        let dataset = entry?.path();
        if !dataset.is_dir() {
            continue;
        }
        for file in fs::read_dir(&dataset)? {
            let file = file?.path();
            if file.extension().is_some_and(|extension| extension == "log") {
                files.push(file);
            }
        }
    }
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no *.log files under {}", loghub.display());
    Ok(files)
}

fn display_name(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap_or(file);
    format!("syslog/{}", relative.display())
}

/// A receive time with a sub-second fraction no sample timestamp has.
fn marked(time: DateTime<Utc>) -> DateTime<Utc> {
    time + chrono::Duration::microseconds(123)
}

fn record(body: &[u8], received: DateTime<Utc>) -> RawRecord {
    RawRecord {
        tenant: Default::default(),
        kind: SourceKind::Syslog,
        source_name: Arc::from("conformance"),
        peer: Some(PEER.to_string()),
        received,
        body: body.to_vec(),
        meta: RecordMeta::None,
    }
}

/// One message per non-empty line. Thunderbird lines carry a loghub prefix (alert flag, epoch
/// seconds, date, node): the syslog part starts at the fifth field, and the epoch serves as
/// the receive time so that the year of the year-less timestamp resolves to the real one.
fn tally_lines(bytes: &[u8], thunderbird: bool) -> Tally {
    let now = marked(Utc::now());
    let mut tally = Tally::default();
    for (index, line) in bytes.split(|byte| *byte == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (body, received) =
            if thunderbird { strip_loghub_prefix(line, now) } else { (line, now) };
        tally.record(index + 1, &normalise(&record(body, received)));
    }
    tally
}

fn strip_loghub_prefix(line: &[u8], fallback: DateTime<Utc>) -> (&[u8], DateTime<Utc>) {
    let mut fields = line.splitn(5, |byte| *byte == b' ');
    let epoch = fields
        .nth(1)
        .and_then(|field| std::str::from_utf8(field).ok())
        .and_then(|text| text.parse::<i64>().ok())
        .and_then(|seconds| Utc.timestamp_opt(seconds, 0).single())
        .map_or(fallback, marked);
    match fields.nth(2) {
        Some(syslog_part) => (syslog_part, epoch),
        None => (line, epoch),
    }
}

/// The octet-counted capture cut by the same framing the TCP source uses.
fn tally_octet_counted(bytes: &[u8]) -> Tally {
    let received = marked(Utc::now());
    let mut tally = Tally::default();
    for (index, frame) in split_frames(bytes, MAX_MESSAGE_BYTES).into_iter().enumerate() {
        match frame {
            Frame::Message(message) => {
                tally.record(index + 1, &normalise(&record(message, received)))
            }
            Frame::TooLarge => {
                tally.lines += 1;
                tally.examples.push(format!("frame {}: over {MAX_MESSAGE_BYTES} bytes", index + 1));
            }
        }
    }
    tally
}

/// Fields of rsyslog's expected parse that map onto ours.
const COMPARED: [&str; 7] =
    ["pri", "facility", "severity", "timestamp", "hostname", "appname", "msg"];

/// Parses every rsyslog `*.parse1` case and compares the mappable fields.
///
/// Each case is two non-comment lines: the message as sent (`\NNN` octal escapes stand for
/// bytes) and rsyslog's parse as `PRI,facility,severity,timestamp,hostname,programname,
/// syslogtag,msg` (the samples show the program name before the tag, e.g.
/// `sshd(pam_unix),sshd(pam_unix)[12750]:`), control characters escaped as `#ooo`, and `~H`
/// for rsyslog's own hostname (compared with the peer's IP, which we use instead).
/// Our time is UTC, rsyslog prints the sender's local time: cases with an offset differ there.
fn compare_rsyslog_cases(directory: &Path) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = fs::read_dir(directory)
        .with_context(|| format!("listing {}", directory.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "parse1"))
        .collect();
    files.sort();
    let received = marked(Utc.with_ymd_and_hms(2010, 6, 15, 12, 0, 0).single().context("date")?);
    let mut cases = 0;
    let mut full_matches = 0;
    let mut field_matches = [0usize; COMPARED.len()];
    let mut mismatches = Vec::new();
    for file in &files {
        let text = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let lines: Vec<&[u8]> = text
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty() && !line.starts_with(b"#"))
            .collect();
        let name =
            file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        for (case_index, pair) in lines.chunks(2).enumerate() {
            let [input, expected] = pair else {
                mismatches.push(format!("{name}: odd line without an expected parse"));
                continue;
            };
            cases += 1;
            let event = normalise(&record(&decode_octal_escapes(input), received));
            let expected = String::from_utf8_lossy(expected);
            let differences = compare_case(&event, &expected);
            let mut all_match = true;
            for (slot, field) in COMPARED.iter().enumerate() {
                match differences.iter().find(|(name, ..)| name == field) {
                    None => field_matches[slot] += 1,
                    Some((_, wanted, got)) => {
                        all_match = false;
                        mismatches.push(format!(
                            "{name} case {}: {field}: expected {:?}, got {:?}",
                            case_index + 1,
                            brief(wanted),
                            brief(got)
                        ));
                    }
                }
            }
            if all_match {
                full_matches += 1;
            }
        }
    }
    let mut per_field = String::new();
    for (field, matched) in COMPARED.iter().zip(field_matches) {
        let _ = write!(per_field, " {field} {matched}/{cases};");
    }
    println!("rsyslog *.parse1: {cases} cases, {full_matches} match fully; per field:{per_field}");
    for mismatch in &mismatches {
        println!("    mismatch: {mismatch}");
    }
    Ok(())
}

/// The (field, expected, ours) triples that differ.
fn compare_case(event: &Event, expected: &str) -> Vec<(&'static str, String, String)> {
    let parts: Vec<&str> = expected.splitn(6, ',').collect();
    let part = |index: usize| parts.get(index).copied().unwrap_or("");
    let (programname, tag, message) = split_tag_fields(part(5));
    let expected_appname = match programname {
        "" => tag.split(['[', ':']).next().unwrap_or(""),
        programname => programname,
    };
    let expected_host = match part(4) {
        "~H" => PEER_HOST,
        host => host,
    };
    let field_text =
        |key: &str| event.fields.get(key).map(|value| value.as_text()).unwrap_or_default();
    let ours = [
        ("pri", part(0).to_string(), field_text("syslog.priority")),
        ("facility", part(1).to_string(), event.category.clone().unwrap_or_default()),
        ("severity", part(2).to_string(), field_text("syslog.severity")),
        ("timestamp", part(3).to_string(), event.time.format("%b %e %H:%M:%S").to_string()),
        ("hostname", expected_host.to_string(), event.host.clone().unwrap_or_default()),
        ("appname", expected_appname.to_string(), rsyslog_escape(&field_text("appname"))),
        ("msg", message.trim().to_string(), rsyslog_escape(event.message.trim())),
    ];
    ours.into_iter().filter(|(_, wanted, got)| wanted != got).collect()
}

/// Splits `programname,syslogtag,msg`, where the program name and the tag may hold commas
/// (malformed1: `05",result_code=200,b`): the tag starts with the program name, so the split is
/// the first comma after which the rest repeats the text before it.
fn split_tag_fields(rest: &str) -> (&str, &str, &str) {
    for (comma, _) in rest.match_indices(',') {
        let (programname, after) = (&rest[..comma], &rest[comma + 1..]);
        if !after.starts_with(programname) {
            continue;
        }
        let tag_end =
            after[programname.len()..].find(',').map_or(after.len(), |end| programname.len() + end);
        let message = after.get(tag_end + 1..).unwrap_or("");
        return (programname, &after[..tag_end], message);
    }
    ("", "", rest)
}

/// A long value cut for the mismatch list.
fn brief(text: &str) -> String {
    const LIMIT: usize = 60;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// rsyslog's test inputs write bytes as `\NNN` (three octal digits).
fn decode_octal_escapes(input: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut index = 0;
    while index < input.len() {
        let escape = input.get(index + 1..index + 4).filter(|digits| {
            input[index] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        match escape
            .and_then(|digits| u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok())
        {
            Some(byte) => {
                bytes.push(byte);
                index += 4;
            }
            None => {
                bytes.push(input[index]);
                index += 1;
            }
        }
    }
    bytes
}

/// Control characters as rsyslog prints them (`#011` for a tab).
fn rsyslog_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_ascii_control() {
            let _ = write!(escaped, "#{:03o}", u32::from(character));
        } else {
            escaped.push(character);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_escapes_and_rsyslog_escaping_are_inverse() {
        let decoded = decode_octal_escapes(br"a\011b\x\01");
        assert_eq!(decoded, b"a\tb\\x\\01");
        assert_eq!(rsyslog_escape("a\tb"), "a#011b");
    }

    #[test]
    fn expected_tag_fields_may_hold_commas() {
        assert_eq!(
            split_tag_fields("a(b),a(b)[1]:, msg, with commas"),
            ("a(b)", "a(b)[1]:", " msg, with commas")
        );
        assert_eq!(split_tag_fields(",su,BOM text"), ("", "su", "BOM text"));
        assert_eq!(split_tag_fields("0,x,0,x,"), ("0,x", "0,x", ""));
    }

    #[test]
    fn thunderbird_prefix_gives_body_and_receive_time() {
        let line = b"- 1131566461 2005.11.09 dn1 Nov 9 12:01:01 dn1/dn1 crond[1]: x";
        let (body, received) = strip_loghub_prefix(line, Utc::now());
        assert_eq!(body, b"Nov 9 12:01:01 dn1/dn1 crond[1]: x");
        assert_eq!(received.timestamp(), 1_131_566_461);
    }

    #[test]
    fn expected_parse_is_compared_field_by_field() {
        let record = record(b"<38>Mar  7 19:06:53 example tag: hello", marked(Utc::now()));
        let event = normalise(&record);
        assert!(
            compare_case(&event, "38,auth,info,Mar  7 19:06:53,example,tag,tag:, hello").is_empty()
        );
        let differences = compare_case(&event, "38,auth,info,Mar  7 19:06:53,other,tag,tag:, bye");
        let fields: Vec<&str> = differences.iter().map(|(field, ..)| *field).collect();
        assert_eq!(fields, ["hostname", "msg"]);
    }
}
