//! The search language: any text to the parser and checker, which answer a plan or an error
//! whose position lies within the text.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use securewatch_schemas::query::compile;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    if let Err(error) = compile(&text, now) {
        assert!(error.position <= text.len(), "the error points past the text");
        assert!(error.line >= 1 && error.column >= 1);
    }
});
