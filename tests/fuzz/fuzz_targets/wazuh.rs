//! Wazuh: one `alerts.json` line into an event (or a dead letter with its reason).
#![no_main]

use libfuzzer_sys::fuzz_target;
use securewatch_fuzz::record;
use securewatch_schemas::{RecordMeta, SourceKind};

fuzz_target!(|data: &[u8]| {
    if let Err(error) = securewatch_parse::normalise(&record(SourceKind::Wazuh, data, RecordMeta::None)) {
        assert!(!error.reason().is_empty());
    }
});
