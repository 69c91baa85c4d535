//! HEC: splitting an `/event` body into envelopes and `/raw` bodies into lines, then normalising each.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securewatch_connectors::sources::hec::split::{split_events, split_raw};
use securewatch_fuzz::{hec_meta, record};
use securewatch_schemas::{RecordMeta, SourceKind};

fuzz_target!(|data: &[u8]| {
    let meta = hec_meta();
    if let Ok(envelopes) = split_events(data) {
        for (index, range) in envelopes.into_iter().enumerate() {
            let meta = RecordMeta::HecEvent { meta: meta.clone(), index: index as u32 };
            let _ = securewatch_parse::normalise(&record(SourceKind::Hec, &data[range], meta));
        }
    }
    for (index, range) in split_raw(data).into_iter().enumerate() {
        let meta = RecordMeta::HecRaw { meta: meta.clone(), index: index as u32 };
        let event = securewatch_parse::normalise(&record(SourceKind::Hec, &data[range], meta));
        assert!(event.is_ok(), "a raw line always becomes an event");
    }
});
