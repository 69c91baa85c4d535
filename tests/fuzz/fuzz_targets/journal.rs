//! The journal: a segment file of frames (length, CRC, bus-layout fields) opened and read back, as after a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securewatch_connectors::bus::journal::Journal;

/// One directory for every run (a fresh one per input would cost more than the input).
static DIR: std::sync::LazyLock<tempfile::TempDir> = std::sync::LazyLock::new(|| tempfile::tempdir().expect("a temporary directory"));

fuzz_target!(|data: &[u8]| {
    let dir = DIR.path();
    for entry in std::fs::read_dir(dir).expect("the directory") {
        std::fs::remove_file(entry.expect("an entry").path()).expect("removes what the last run left");
    }
    std::fs::write(dir.join("00000000000000000000.journal"), data).expect("the segment");
    let journal = Journal::open(dir, 1 << 20).expect("opening cuts off a damaged tail instead of failing");
    let end = journal.end();
    assert!(end <= data.len() as u64);
    // Open checks the frames (length, CRC); a frame whose CRC holds but whose fields do not
    // decode is reported by the read, which stops there with the records before it.
    let (records, error) = journal.read_from(0);
    assert!(records.windows(2).all(|pair| pair[0].1 < pair[1].1), "offsets increase");
    assert!(records.iter().all(|(_, offset)| *offset <= end));
    if let Some(error) = error {
        assert!(error.to_string().contains("journal"), "{error}");
    }
});
