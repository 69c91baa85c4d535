//! Wazuh conformance: parse rates of the Wazuh parser over the real samples in `corpus/wazuh/`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use securewatch_parse::{normalise, ParseError};
use securewatch_schemas::{RawRecord, RecordMeta};
use securewatch_schemas::SourceKind;

/// Distinct failure messages printed per file; the rest are only counted.
const FAILURES_SHOWN: usize = 5;

/// The marker in the file name of the sample that must be rejected.
const INVALID_MARKER: &str = "INVALID";

/// What parsing one file gave.
struct FileReport {
    records: usize,
    parsed: usize,
    /// Events whose `parse_warning` field says a value was replaced (e.g. a placeholder time).
    warned: usize,
    /// `(record number, error)` per rejected record.
    failures: Vec<(usize, ParseError)>,
}

impl FileReport {
    fn rate(&self) -> f64 {
        if self.records == 0 {
            return 0.0;
        }
        100.0 * self.parsed as f64 / self.records as f64
    }

    fn print(&self, name: &str) {
        println!(
            "  {name}: records {}, parsed {}, rate {:.1}%{}",
            self.records,
            self.parsed,
            self.rate(),
            if self.warned > 0 {
                format!(", with parse_warning {}", self.warned)
            } else {
                String::new()
            }
        );
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        // Distinct messages in order of first appearance: (message, first record, count).
        let mut messages: Vec<(String, usize, usize)> = Vec::new();
        for (number, error) in &self.failures {
            *reasons.entry(error.reason()).or_default() += 1;
            let message = format!("{}: {error}", error.reason());
            match messages.iter_mut().find(|(known, _, _)| *known == message) {
                Some((_, _, count)) => *count += 1,
                None => messages.push((message, *number, 1)),
            }
        }
        for (reason, count) in &reasons {
            println!("    rejected {reason}: {count}");
        }
        for (message, first, count) in messages.iter().take(FAILURES_SHOWN) {
            println!("    {message} (x{count}, first at record {first})");
        }
        if messages.len() > FAILURES_SHOWN {
            println!("    ... {} more distinct failures", messages.len() - FAILURES_SHOWN);
        }
    }
}

/// Parses every sample under `corpus/wazuh/alerts/` and `corpus/wazuh/wazuh5-findings/` and
/// prints records, parsed and rate per file. Ok(true) iff every alert of the valid alert files
/// parses and the `INVALID` sample is rejected; the Wazuh 5 findings (no `rule`) are reported
/// only.
pub fn run(corpus: &Path) -> anyhow::Result<bool> {
    let mut conforming = true;

    println!("wazuh: alerts.json samples");
    for path in files_in(&corpus.join("wazuh/alerts"))? {
        let name = file_name(&path);
        let report = parse_file(&path)?;
        report.print(&name);
        if name.contains(INVALID_MARKER) {
            let rejected = report.records > 0 && report.parsed == 0;
            println!("    expected to be rejected: {}", if rejected { "yes" } else { "NO" });
            conforming &= rejected;
        } else {
            conforming &= report.records > 0 && report.failures.is_empty();
        }
    }

    println!("wazuh: Wazuh 5 findings (different schema, reported only)");
    for path in files_in(&corpus.join("wazuh/wazuh5-findings"))? {
        parse_file(&path)?.print(&file_name(&path));
    }

    println!("wazuh: {}", if conforming { "conforming" } else { "NOT conforming" });
    Ok(conforming)
}

/// The regular files of `directory` except its notes, sorted by name.
fn files_in(directory: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in
        fs::read_dir(directory).with_context(|| format!("reading {}", directory.display()))?
    {
        let path = entry?.path();
        let is_note = path.extension().is_some_and(|extension| extension == "md");
        if path.is_file() && !is_note {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into())
}

/// Cuts a file into records (JSON lines, or one record when the file is one pretty-printed
/// document) and normalises each as the Wazuh tailer's records would be.
fn parse_file(path: &Path) -> anyhow::Result<FileReport> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut report = FileReport { records: 0, parsed: 0, warned: 0, failures: Vec::new() };
    let source_name: Arc<str> = Arc::from("conformance");
    for (number, (offset, body)) in records_of(&text).into_iter().enumerate() {
        let record = RawRecord {
            tenant: Default::default(),
            kind: SourceKind::Wazuh,
            source_name: Arc::clone(&source_name),
            peer: Some(path.display().to_string()),
            received: Utc::now(),
            body: body.to_vec(),
            meta: RecordMeta::File { identity: file_name(path), offset },
        };
        report.records += 1;
        match normalise(&record) {
            Ok(event) => {
                report.parsed += 1;
                if event.fields.contains_key("parse_warning") {
                    report.warned += 1;
                }
            }
            Err(error) => report.failures.push((number + 1, error)),
        }
    }
    Ok(report)
}

/// `(offset, bytes)` per record. A file whose first line opens a document that continues on
/// the next lines (a pretty-printed JSON document) is one record; otherwise each non-blank
/// line is one.
fn records_of(text: &[u8]) -> Vec<(u64, &[u8])> {
    let first_line = text
        .split(|&byte| byte == b'\n')
        .map(<[u8]>::trim_ascii)
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    let opens_document = first_line.first().is_some_and(|byte| matches!(byte, b'{' | b'['));
    let closes_on_same_line = first_line.last().is_some_and(|byte| matches!(byte, b'}' | b']'));
    if opens_document && !closes_on_same_line {
        return vec![(0, text)];
    }
    let mut records = Vec::new();
    let mut offset = 0u64;
    for line in text.split(|&byte| byte == b'\n') {
        if !line.trim_ascii().is_empty() {
            records.push((offset, line));
        }
        offset += line.len() as u64 + 1;
    }
    records
}
