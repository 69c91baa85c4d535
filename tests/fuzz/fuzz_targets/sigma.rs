//! Sigma rule loading: YAML documents into rules, correlations and filters (or rejections), compiled and matched once.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use securewatch_detection::{CompiledCorrelations, Pipelines, RuleSet, SourceDetectors};
use securewatch_fuzz::record;
use securewatch_schemas::{RecordMeta, SourceKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let set = RuleSet::from_text(Path::new("fuzz.yml"), text);
    let detectors = SourceDetectors::compile(&set, &Pipelines::default());
    let _ = CompiledCorrelations::compile(&set);
    let line = b"<34>1 2026-12-06T07:00:00Z web01 sshd 42 - - Failed password for root from 10.0.0.1";
    let event = securewatch_parse::normalise(&record(SourceKind::Syslog, line, RecordMeta::None)).expect("syslog");
    let _ = detectors.matches(&event).count();
});
