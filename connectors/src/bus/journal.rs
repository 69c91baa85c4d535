//! The embedded bus of `securewatch run`: an append-only journal of raw records in segment files
//! of the data directory, synced to disk per append, read back after a crash.
//!
//! Offsets are byte positions over the whole journal; segment `N.journal` (20 digits) starts at
//! offset `N`. A frame is `length: u32 LE | crc32(payload): u32 LE | payload`, the payload the
//! record's bus [`layout`](super::layout) fields as `name: u8 | length: u32 LE | bytes`. Opening
//! drops a torn or corrupt tail of the newest segment (a crash mid-write): what was synced
//! before it stays. Segments wholly below the committed offset are deleted.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use securewatch_schemas::RawRecord;

use super::layout::{for_each_field, Decoder};

/// Why the journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, writing, syncing or listing a journal file failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The segment file or directory concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A frame cannot be read back as a record.
    #[error("journal {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The segment file holding the frame.
        path: PathBuf,
        /// The journal offset of the frame.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Largest frame accepted when reading (a length above it is corruption, not a record).
const MAX_FRAME: u32 = 256 << 20;
const HEADER: u64 = 8;

/// An open journal: appends go to the newest segment.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    segment_bytes: u64,
    /// Start offsets of the segments on disk, oldest first (never empty).
    segments: Vec<u64>,
    file: File,
    /// Offset after the last frame.
    end: u64,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.to_path_buf(), source }
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.journal"))
}

/// The payload of one record.
fn encode(record: &RawRecord, out: &mut Vec<u8>) {
    for_each_field(record, |name, value| {
        out.push(name.as_bytes()[0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    });
}

fn decode(decoder: &mut Decoder, payload: &[u8]) -> Result<RawRecord, String> {
    let mut fields: Vec<(u8, &[u8])> = Vec::with_capacity(10);
    let mut rest = payload;
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err("truncated field".into());
        }
        let length = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let value = rest.get(5..5 + length).ok_or("field longer than its frame")?;
        fields.push((rest[0], value));
        rest = &rest[5 + length..];
    }
    let lookup = |name: &'static str| Ok(fields.iter().find(|(key, _)| *key == name.as_bytes()[0]).map(|(_, value)| *value));
    decoder.decode_fields(lookup).map_err(|error| error.to_string())
}

/// Reads the frame at the reader's position: `Ok(None)` at a clean end, `Err(reason)` for a torn
/// or corrupt frame.
fn read_frame(reader: &mut impl Read, buffer: &mut Vec<u8>) -> std::io::Result<Result<Option<()>, String>> {
    let mut header = [0u8; HEADER as usize];
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..])? {
            0 if filled == 0 => return Ok(Ok(None)),
            0 => return Ok(Err("torn frame header".into())),
            read => filled += read,
        }
    }
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length > MAX_FRAME {
        return Ok(Err(format!("frame length {length} is implausible")));
    }
    // Read what is there rather than allocate what the header claims: a damaged length would
    // otherwise zero up to MAX_FRAME bytes for every torn tail (fuzzing: 130 ms each).
    buffer.clear();
    reader.take(u64::from(length)).read_to_end(buffer)?;
    if buffer.len() < length as usize {
        return Ok(Err("torn frame".into()));
    }
    if crc32fast::hash(buffer) != crc {
        return Ok(Err("checksum mismatch".into()));
    }
    Ok(Ok(Some(())))
}

impl Journal {
    /// Opens (or creates) the journal in `dir`; a torn tail of the newest segment is cut off.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut segments: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io_error(dir))?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".journal")?.parse().ok())
            .collect();
        segments.sort_unstable();
        if segments.is_empty() {
            segments.push(0);
        }
        let newest = *segments.last().expect("not empty");
        let path = segment_path(dir, newest);
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io_error(&path))?;
        // Keep whole frames only.
        let mut reader = BufReader::new(&mut file);
        let (mut good, mut buffer) = (0u64, Vec::new());
        loop {
            match read_frame(&mut reader, &mut buffer).map_err(io_error(&path))? {
                Ok(Some(())) => good += HEADER + buffer.len() as u64,
                Ok(None) => break,
                Err(reason) => {
                    tracing::warn!(path = %path.display(), offset = newest + good, %reason, "Journal tail cut off (a crash mid-write).");
                    break;
                }
            }
        }
        drop(reader);
        file.set_len(good).map_err(io_error(&path))?;
        file.sync_all().map_err(io_error(&path))?;
        Ok(Journal { dir: dir.to_path_buf(), segment_bytes: segment_bytes.max(1), segments, file, end: newest + good })
    }

    /// The offset after the last record.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The offset of the oldest record kept.
    pub fn start(&self) -> u64 {
        self.segments[0]
    }

    /// Appends `records` and syncs them to disk; returns the offset after them.
    pub fn append(&mut self, records: &[RawRecord]) -> Result<u64, JournalError> {
        let end = self.write(records)?;
        self.sync()?;
        Ok(end)
    }

    /// Syncs what [`Journal::write`] appended to disk (one sync for several writes).
    pub fn sync(&mut self) -> Result<(), JournalError> {
        let path = segment_path(&self.dir, *self.segments.last().expect("not empty"));
        self.file.sync_data().map_err(io_error(&path))
    }

    /// Appends `records` without syncing (call [`Journal::sync`] before relying on them);
    /// returns the offset after them.
    pub fn write(&mut self, records: &[RawRecord]) -> Result<u64, JournalError> {
        if self.end - self.segments.last().expect("not empty") >= self.segment_bytes {
            self.sync()?; // the segment being left keeps what was written to it
            let path = segment_path(&self.dir, self.end);
            self.file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_error(&path))?;
            self.segments.push(self.end);
            if let Ok(dir) = File::open(&self.dir) {
                let _ = dir.sync_all(); // the new file's name
            }
        }
        let mut frames = Vec::new();
        let mut payload = Vec::new();
        for record in records {
            payload.clear();
            encode(record, &mut payload);
            frames.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frames.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            frames.extend_from_slice(&payload);
        }
        let start = *self.segments.last().expect("not empty");
        let path = segment_path(&self.dir, start);
        if let Err(error) = self.file.write_all(&frames) {
            // Part of the frames may be in the file: cut it back, so later frames start where
            // the offsets say they do.
            if let Err(cut) = self.file.set_len(self.end - start) {
                tracing::error!(path = %path.display(), error = %cut, "Cannot cut a failed journal write back.");
            }
            return Err(io_error(&path)(error));
        }
        self.end += frames.len() as u64;
        Ok(self.end)
    }

    /// Starts a new segment at `offset` when the journal ends before it (its files were removed
    /// while the store kept a later committed offset), so offsets never go back.
    pub fn skip_to(&mut self, offset: u64) -> Result<(), JournalError> {
        if offset <= self.end {
            return Ok(());
        }
        self.sync()?;
        let path = segment_path(&self.dir, offset);
        self.file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io_error(&path))?;
        self.segments.push(offset);
        self.end = offset;
        Ok(())
    }

    /// Every record from `offset` on (at a frame boundary), in order, each with the offset after
    /// it, and the error that stopped the reading early, if any (a record that no longer
    /// decodes, naming its offset): the records before it are returned all the same.
    pub fn read_from(&self, offset: u64) -> (Vec<(RawRecord, u64)>, Option<JournalError>) {
        let mut records = Vec::new();
        let error = self.read_into(offset, &mut records).err();
        (records, error)
    }

    fn read_into(&self, offset: u64, records: &mut Vec<(RawRecord, u64)>) -> Result<(), JournalError> {
        let mut decoder = Decoder::default();
        let mut buffer = Vec::new();
        for (index, &start) in self.segments.iter().enumerate() {
            let next = self.segments.get(index + 1).copied().unwrap_or(u64::MAX);
            if next <= offset {
                continue;
            }
            let path = segment_path(&self.dir, start);
            let mut file = File::open(&path).map_err(io_error(&path))?;
            let mut position = start.max(offset);
            file.seek(SeekFrom::Start(position - start)).map_err(io_error(&path))?;
            let mut reader = BufReader::new(file);
            loop {
                let corrupt = |reason: String| JournalError::Corrupt { path: path.clone(), offset: position, reason };
                match read_frame(&mut reader, &mut buffer).map_err(io_error(&path))? {
                    Ok(None) => break,
                    Err(reason) => return Err(corrupt(reason)),
                    Ok(Some(())) => {
                        let record = decode(&mut decoder, &buffer).map_err(corrupt)?;
                        position += HEADER + buffer.len() as u64;
                        records.push((record, position));
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes the segments whose records all lie below `offset` (committed elsewhere); the
    /// newest segment stays. A segment already gone counts as deleted; one that cannot be
    /// deleted stays listed and is an error (appending goes on regardless).
    pub fn discard_below(&mut self, offset: u64) -> Result<usize, JournalError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1] <= offset {
            let path = segment_path(&self.dir, self.segments[0]);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(&path)(error)),
            }
            self.segments.remove(0);
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};
    use securewatch_schemas::RecordMeta;
    use securewatch_schemas::SourceKind;

    use super::*;

    fn record(n: usize) -> RawRecord {
        RawRecord {
            tenant: Default::default(),
            kind: SourceKind::Syslog,
            source_name: Arc::from("syslog"),
            peer: Some("127.0.0.1:514".into()),
            received: Utc.timestamp_opt(1_767_268_800 + n as i64, 0).unwrap(),
            body: format!("<13>line {n}").into_bytes(),
            meta: RecordMeta::None,
        }
    }

    fn bodies(records: &[(RawRecord, u64)]) -> Vec<String> {
        records.iter().map(|(record, _)| String::from_utf8(record.body.clone()).unwrap()).collect()
    }

    #[test]
    fn records_read_back_from_any_offset_across_segments_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 200).unwrap();
        let mut ends = Vec::new();
        for batch in 0..5 {
            let records: Vec<RawRecord> = (batch * 3..batch * 3 + 3).map(record).collect();
            ends.push(journal.append(&records).unwrap());
        }
        assert!(journal.segments.len() > 2, "small segments roll over: {:?}", journal.segments);
        let all = journal.read_from(0).0;
        assert_eq!(bodies(&all), (0..15).map(|n| format!("<13>line {n}")).collect::<Vec<_>>());
        assert_eq!(all[2].1, ends[0], "each record carries the offset after it");
        assert_eq!(all[0].0, record(0));
        drop(journal);
        let journal = Journal::open(dir.path(), 200).unwrap();
        assert_eq!(journal.end(), ends[4]);
        let from_third = journal.read_from(ends[1]).0;
        assert_eq!(bodies(&from_third)[0], "<13>line 6");
        assert_eq!(from_third.len(), 9);
        assert!(journal.read_from(ends[4]).0.is_empty());
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appending_goes_on_after_the_last_whole_record() {
        // A frame cut short by a crash, and a damaged header claiming 200 MiB (read as far as
        // the file goes, not allocated: fuzzing found each such open cost 130 ms).
        for claimed in [40u32, 200 << 20] {
            let dir = tempfile::tempdir().unwrap();
            let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
            let end = journal.append(&[record(1), record(2)]).unwrap();
            drop(journal);
            let path = segment_path(dir.path(), 0);
            let mut file = OpenOptions::new().append(true).open(&path).unwrap();
            file.write_all(&claimed.to_le_bytes()).unwrap();
            file.write_all(&[1, 2, 3, 4, b'v']).unwrap();
            drop(file);
            let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(journal.end(), end);
            journal.append(&[record(3)]).unwrap();
            assert_eq!(bodies(&journal.read_from(0).0), ["<13>line 1", "<13>line 2", "<13>line 3"]);
        }
    }

    #[test]
    fn a_corrupt_record_in_the_middle_is_an_error_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
        let first_end = journal.append(&[record(1)]).unwrap();
        journal.append(&[record(2)]).unwrap();
        let path = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (before, error) = journal.read_from(0);
        assert_eq!(bodies(&before), ["<13>line 1"], "the records before the bad one are read");
        let error = error.expect("an error").to_string();
        assert!(error.contains(&format!("offset {first_end}")) && error.contains("checksum"), "{error}");
    }

    #[test]
    fn segments_below_the_committed_offset_are_deleted_but_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 100).unwrap();
        let ends: Vec<u64> = (0..6).map(|n| journal.append(&[record(n)]).unwrap()).collect();
        let segments = journal.segments.len();
        assert!(segments >= 3, "{:?}", journal.segments);
        assert_eq!(journal.discard_below(0).unwrap(), 0);
        let removed = journal.discard_below(ends[3]).unwrap();
        assert!(removed >= 1);
        assert!(journal.start() <= ends[3]);
        assert_eq!(bodies(&journal.read_from(ends[3]).0), ["<13>line 4", "<13>line 5"]);
        journal.discard_below(u64::MAX).unwrap();
        assert_eq!(journal.segments.len(), 1);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1);
    }

    #[test]
    fn a_journal_behind_the_committed_offset_continues_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), 1 << 20).unwrap();
        journal.skip_to(5_000).unwrap();
        let end = journal.append(&[record(1)]).unwrap();
        assert!(end > 5_000);
        drop(journal);
        let journal = Journal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(journal.end(), end);
        assert_eq!(bodies(&journal.read_from(5_000).0), ["<13>line 1"]);
    }
}
