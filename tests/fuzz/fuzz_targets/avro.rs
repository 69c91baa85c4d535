//! The bus's Avro wire format: magic byte, schema id, event or alert datum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securewatch_schemas::avro::{AlertCodec, EventCodec};

fuzz_target!(|data: &[u8]| {
    let codec = EventCodec::new(1);
    if let Ok(event) = codec.decode(data) {
        // What decodes encodes again, and the same event comes back. Compared by their Debug
        // text: a NaN field is not equal to itself, and Avro maps are unordered, so neither
        // `==` on events nor the encoded bytes would do.
        let encoded = codec.encode(&event).expect("a decoded event encodes");
        let again = codec.decode(&encoded).expect("an encoded event decodes");
        assert_eq!(format!("{again:?}"), format!("{event:?}"));
    }
    let _ = AlertCodec::new(1).decode(data);
});
