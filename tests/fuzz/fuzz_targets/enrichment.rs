//! Enrichment reference files: the asset inventory (CSV) and IP/CIDR lists.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use securewatch_connectors::enrichment::{parse_assets, parse_network_list};

fuzz_target!(|data: &[u8]| {
    let _ = parse_assets(Path::new("assets.csv"), data);
    let _ = parse_network_list(Path::new("list.txt"), data);
});
