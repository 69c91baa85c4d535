//! The journal: a segment file of frames (length, CRC, bus-layout fields) opened and read back, as after a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use securewatch_connectors::bus::journal::Journal;

/// One directory for every run (a fresh one per input would cost more than the input), in
/// memory when the machine has /dev/shm: the journal fsyncs, which on a disk caps the run at a
/// few hundred inputs a second.
static DIR: std::sync::LazyLock<tempfile::TempDir> = std::sync::LazyLock::new(|| {
    let in_memory = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new();
    if in_memory.is_dir() { builder.tempdir_in(in_memory) } else { builder.tempdir() }.expect("a temporary directory")
});

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
