//! Follows one path across appends, rotation and truncation, cutting complete lines into records.
//!
//! The tailer polls: it reads what is new, and only at end of file does it look at the path.
//! - **Truncation**: the open file is shorter than what was read → restart at offset 0
//!   (counted in [`TRUNCATIONS`]); an unterminated line read before it is dropped and counted
//!   as rejected `truncated_line` (`copytruncate` rotation cut it mid-line). A file truncated and refilled past the old position between
//!   two polls cannot be told apart from an append (the `copytruncate` race every tailer has).
//! - **Rotation**: the path names another file (`<dev>:<inode>` differs). The old handle is read
//!   until it has stayed at its end for one poll interval after the change was seen, so lines
//!   the writer still appends to it are not lost; a final line without newline is then
//!   forwarded as it is. The new file is read from offset 0. While the path does not exist the
//!   old handle is still followed.
//! - Only lines ending in `\n` are consumed; an unterminated last line waits.
//! - **Symbolic links**: unless `follow_symlinks` is set, a symlink at the path is not opened
//!   and counts as a missing file (logged once per appearance, counted in
//!   [`SYMLINKS_REFUSED`]). The path is checked with `lstat` before opening and the opened file
//!   must have the identity seen there, so a link swapped in between is not followed either.

use std::fmt;
use std::io::{self, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use securewatch_schemas::{RawRecord, RecordMeta};
use securewatch_schemas::{SourceKind, Tenant};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::config::{StartAt, WazuhConfig};
use super::position::Position;
use super::WazuhError;
use crate::telemetry::SourceLabels;

/// Times the followed file was found truncated (shorter than the read position).
pub const TRUNCATIONS: &str = "securewatch_wazuh_truncations_total";

/// Times a symbolic link was found at the path and not followed (`follow_symlinks = false`);
/// counted once per appearance, not per poll.
pub const SYMLINKS_REFUSED: &str = "securewatch_wazuh_symlinks_refused_total";

/// Bytes read from the file per read call.
const READ_CHUNK: usize = 64 * 1024;

/// A file's identity on its file system; survives renames, changes when a new file is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> FileIdentity {
        FileIdentity { device: metadata.dev(), inode: metadata.ino() }
    }
}

impl fmt::Display for FileIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.device, self.inode)
    }
}

/// How to choose the offset of the first file opened.
#[derive(Debug, Clone)]
pub(super) enum Resume {
    /// Continue from a persisted position.
    Persisted(Position),
    /// No position persisted: begin as configured.
    Fresh(StartAt),
}

/// Complete lines read in one step, and the position once they are durable.
#[derive(Debug)]
pub(super) struct Lines {
    /// One record per line, in file order.
    pub records: Vec<RawRecord>,
    /// Bytes of these lines including their newlines.
    pub bytes: u64,
    /// Where reading continues after these lines.
    pub position: Position,
}

/// The outcome of one [`Tailer::poll`].
#[derive(Debug)]
pub(super) enum Step {
    /// New lines to deliver; persist `position` once they are durable.
    Lines(Lines),
    /// The position moved without records to deliver (start resolved, oversize lines
    /// skipped, truncation); persist it now.
    Advanced(Position),
    /// Nothing new: wait one poll interval.
    Idle,
}

/// What end of file revealed.
enum EndOfFile {
    Step(Step),
    /// The old file is finished; open the new one at the path.
    Switched,
}

/// What the path names, as far as the tailer may look.
enum AtPath {
    Missing,
    /// A symbolic link that is not to be followed.
    Symlink,
    File(FileIdentity),
}

/// What opening the path gave.
enum Opened {
    Missing,
    Ready,
    Persist(Position),
}

/// The per-source context every cut line needs.
struct LineContext {
    source_name: Arc<str>,
    tenant: Tenant,
    peer: String,
    max_line_bytes: usize,
    labels: SourceLabels,
}

/// The file being read and the bytes read from it that are not consumed yet.
struct OpenFile {
    file: File,
    identity: FileIdentity,
    identity_text: String,
    /// Offset of the first byte of `pending`: everything before it is consumed.
    consumed: u64,
    pending: Vec<u8>,
    /// Skipping the rest of a line that is already dealt with (too long, or begun before a
    /// `start_at = "end"` start).
    discarding: bool,
    /// The path was seen naming another file at end of file once already.
    rotation_seen: bool,
}

impl OpenFile {
    async fn at(mut file: File, identity: FileIdentity, offset: u64) -> io::Result<OpenFile> {
        file.seek(SeekFrom::Start(offset)).await?;
        Ok(OpenFile {
            file,
            identity,
            identity_text: identity.to_string(),
            consumed: offset,
            pending: Vec::new(),
            discarding: false,
            rotation_seen: false,
        })
    }

    fn position(&self) -> Position {
        Position { identity: self.identity_text.clone(), offset: self.consumed }
    }

    /// Appends up to one chunk from the file to `pending`; 0 at end of file.
    async fn read_more(&mut self) -> io::Result<usize> {
        let filled = self.pending.len();
        self.pending.resize(filled + READ_CHUNK, 0);
        let result = self.file.read(&mut self.pending[filled..]).await;
        let read = result.as_ref().map_or(0, |read| *read);
        self.pending.truncate(filled + read);
        result
    }

    /// Moves complete lines from `pending` into `lines` (at most `max_lines` in all) and
    /// skips lines longer than the limit, counting each as rejected `too_large`.
    fn take_lines(
        &mut self,
        context: &LineContext,
        received: DateTime<Utc>,
        max_lines: usize,
        lines: &mut Lines,
    ) {
        let mut start = 0;
        while lines.records.len() < max_lines {
            let Some(length) = self.pending[start..].iter().position(|&byte| byte == b'\n') else {
                break;
            };
            let line = &self.pending[start..start + length];
            let offset = self.consumed + start as u64;
            if self.discarding {
                self.discarding = false;
            } else if line.len() > context.max_line_bytes {
                reject_too_large(context, offset, length as u64 + 1);
            } else {
                lines.records.push(RawRecord {
                    kind: SourceKind::Wazuh,
                    source_name: Arc::clone(&context.source_name),
                    tenant: context.tenant.clone(),
                    peer: Some(context.peer.clone()),
                    received,
                    body: line.to_vec(),
                    meta: RecordMeta::File { identity: self.identity_text.clone(), offset },
                });
                lines.bytes += length as u64 + 1;
            }
            start += length + 1;
        }
        let rest = &self.pending[start..];
        if !rest.contains(&b'\n') {
            if self.discarding {
                start = self.pending.len();
            } else if rest.len() > context.max_line_bytes {
                reject_too_large(context, self.consumed + start as u64, rest.len() as u64);
                self.discarding = true;
                start = self.pending.len();
            }
        }
        self.pending.drain(..start);
        self.consumed += start as u64;
    }

    /// The unterminated last line of a finished (rotated) file, forwarded as it is.
    fn take_unterminated(&mut self, context: &LineContext, lines: &mut Lines) {
        if !self.pending.is_empty() && !self.discarding {
            lines.records.push(RawRecord {
                kind: SourceKind::Wazuh,
                source_name: Arc::clone(&context.source_name),
                tenant: context.tenant.clone(),
                peer: Some(context.peer.clone()),
                received: Utc::now(),
                body: self.pending.clone(),
                meta: RecordMeta::File {
                    identity: self.identity_text.clone(),
                    offset: self.consumed,
                },
            });
            lines.bytes += self.pending.len() as u64;
        }
        self.consumed += self.pending.len() as u64;
        self.pending.clear();
        self.discarding = false;
    }
}

/// Counts one line that is longer than `max_line_bytes`.
fn reject_too_large(context: &LineContext, offset: u64, bytes: u64) {
    tracing::warn!(
        source = %context.source_name,
        offset,
        limit = context.max_line_bytes,
        "Skipped a line longer than max_line_bytes."
    );
    context.labels.received(1, bytes);
    context.labels.rejected("too_large", 1);
}

/// Counts the unterminated line that a truncation cut off (it never gets its newline here).
fn reject_truncated_line(context: &LineContext, offset: u64, bytes: u64) {
    tracing::warn!(source = %context.source_name, offset, bytes, "Dropped a line cut short by truncation.");
    context.labels.received(1, bytes);
    context.labels.rejected("truncated_line", 1);
}

/// Follows the configured path; see the module documentation.
pub(super) struct Tailer {
    path: PathBuf,
    context: LineContext,
    /// Consumed by the first successful open; later files are read from offset 0.
    resume: Option<Resume>,
    current: Option<OpenFile>,
    follow_symlinks: bool,
    /// The symlink now at the path was logged and counted already.
    symlink_reported: bool,
}

impl Tailer {
    pub(super) fn new(config: &WazuhConfig, labels: SourceLabels, resume: Resume) -> Tailer {
        Tailer {
            path: config.path.clone(),
            context: LineContext {
                source_name: Arc::from(config.name.as_str()),
                tenant: config.tenant.clone(),
                peer: config.path.display().to_string(),
                max_line_bytes: config.max_line_bytes,
                labels,
            },
            resume: Some(resume),
            current: None,
            follow_symlinks: config.follow_symlinks,
            symlink_reported: false,
        }
    }

    /// What the path names: `lstat` unless symlinks are followed, then `stat`.
    async fn at_path(&mut self) -> Result<AtPath, WazuhError> {
        let metadata = if self.follow_symlinks {
            tokio::fs::metadata(&self.path).await
        } else {
            tokio::fs::symlink_metadata(&self.path).await
        };
        let at_path = match metadata {
            Ok(metadata) if metadata.file_type().is_symlink() => AtPath::Symlink,
            Ok(metadata) => AtPath::File(FileIdentity::of(&metadata)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => AtPath::Missing,
            Err(source) => return Err(io_error(&self.path, source)),
        };
        match at_path {
            AtPath::Symlink => self.refuse_symlink(),
            AtPath::Missing | AtPath::File(_) => self.symlink_reported = false,
        }
        Ok(at_path)
    }

    /// Logs and counts the symlink at the path, once per appearance.
    fn refuse_symlink(&mut self) {
        if self.symlink_reported {
            return;
        }
        self.symlink_reported = true;
        tracing::warn!(
            source = %self.context.source_name,
            path = %self.path.display(),
            "The path is a symbolic link and follow_symlinks is false: not following it; waiting for a regular file."
        );
        metrics::counter!(SYMLINKS_REFUSED, "source" => self.context.source_name.to_string()).increment(1);
    }

    /// Reads what is new: up to `max_lines` complete lines, or what end of file revealed.
    pub(super) async fn poll(&mut self, max_lines: usize) -> Result<Step, WazuhError> {
        loop {
            if self.current.is_none() {
                match self.open().await? {
                    Opened::Missing => return Ok(Step::Idle),
                    Opened::Persist(position) => return Ok(Step::Advanced(position)),
                    Opened::Ready => {}
                }
            }
            let Some(open) = self.current.as_mut() else { return Ok(Step::Idle) };
            let first_unconsumed = open.consumed;
            let mut lines = Lines { records: Vec::new(), bytes: 0, position: open.position() };
            let received = Utc::now();
            loop {
                open.take_lines(&self.context, received, max_lines, &mut lines);
                if lines.records.len() >= max_lines {
                    break;
                }
                let read = open.read_more().await.map_err(|source| io_error(&self.path, source))?;
                if read == 0 {
                    break;
                }
            }
            if open.consumed != first_unconsumed || !lines.records.is_empty() {
                // Still being written to: a rotation is only acted on after a quiet interval.
                open.rotation_seen = false;
            }
            if !lines.records.is_empty() {
                lines.position = open.position();
                return Ok(Step::Lines(lines));
            }
            if open.consumed != first_unconsumed {
                return Ok(Step::Advanced(open.position()));
            }
            match self.at_end_of_file().await? {
                EndOfFile::Step(step) => return Ok(step),
                EndOfFile::Switched => continue,
            }
        }
    }

    /// Checks the open file for truncation and the path for rotation.
    async fn at_end_of_file(&mut self) -> Result<EndOfFile, WazuhError> {
        let Some(open) = self.current.as_mut() else { return Ok(EndOfFile::Switched) };
        let size = open.file.metadata().await.map_err(|source| io_error(&self.path, source))?.len();
        if size < open.consumed + open.pending.len() as u64 {
            count_truncation(&self.context, size);
            if !open.pending.is_empty() && !open.discarding {
                reject_truncated_line(&self.context, open.consumed, open.pending.len() as u64);
            }
            open.file
                .seek(SeekFrom::Start(0))
                .await
                .map_err(|source| io_error(&self.path, source))?;
            open.consumed = 0;
            open.pending.clear();
            open.discarding = false;
            return Ok(EndOfFile::Step(Step::Advanced(open.position())));
        }
        let path_identity = match self.at_path().await? {
            AtPath::File(identity) => identity,
            // A refused symlink counts as a missing path: the old handle is still followed.
            AtPath::Missing | AtPath::Symlink => return Ok(EndOfFile::Step(Step::Idle)),
        };
        let Some(open) = self.current.as_mut() else { return Ok(EndOfFile::Switched) };
        if path_identity == open.identity {
            return Ok(EndOfFile::Step(Step::Idle));
        }
        if !open.rotation_seen {
            open.rotation_seen = true;
            return Ok(EndOfFile::Step(Step::Idle));
        }
        let mut lines = Lines { records: Vec::new(), bytes: 0, position: open.position() };
        open.take_unterminated(&self.context, &mut lines);
        lines.position = open.position();
        tracing::info!(
            source = %self.context.source_name,
            old = %open.identity,
            new = %path_identity,
            "Finished the rotated file; following the new one."
        );
        self.current = None;
        if lines.records.is_empty() {
            Ok(EndOfFile::Switched)
        } else {
            Ok(EndOfFile::Step(Step::Lines(lines)))
        }
    }

    /// Opens the path and chooses where to start reading.
    async fn open(&mut self) -> Result<Opened, WazuhError> {
        let AtPath::File(seen) = self.at_path().await? else { return Ok(Opened::Missing) };
        let mut file = match File::open(&self.path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
            Err(source) => return Err(io_error(&self.path, source)),
        };
        let metadata = file.metadata().await.map_err(|source| io_error(&self.path, source))?;
        let identity = FileIdentity::of(&metadata);
        if identity != seen {
            // Replaced between the look and the open (perhaps by a symlink): look again at the
            // next poll.
            return Ok(Opened::Missing);
        }
        let size = metadata.len();
        let (offset, discarding, opened) = match self.resume.take() {
            None => (0, false, Opened::Ready),
            Some(Resume::Persisted(position)) if position.identity == identity.to_string() => {
                if position.offset > size {
                    count_truncation(&self.context, size);
                    (
                        0,
                        false,
                        Opened::Persist(Position { identity: identity.to_string(), offset: 0 }),
                    )
                } else {
                    (position.offset, false, Opened::Ready)
                }
            }
            Some(Resume::Persisted(position)) => {
                if self.resume_rotated(&position).await? {
                    return Ok(Opened::Ready);
                }
                tracing::warn!(
                    source = %self.context.source_name,
                    persisted = %position.identity,
                    "The file was replaced while the source was stopped and the old one is not \
                     beside it; lines appended to the old file after the stop are not recovered."
                );
                (0, false, Opened::Persist(Position { identity: identity.to_string(), offset: 0 }))
            }
            Some(Resume::Fresh(StartAt::Beginning)) => {
                (0, false, Opened::Persist(Position { identity: identity.to_string(), offset: 0 }))
            }
            Some(Resume::Fresh(StartAt::End)) => {
                let (offset, discarding) =
                    end_of_last_line(&mut file, size, self.context.max_line_bytes)
                        .await
                        .map_err(|source| io_error(&self.path, source))?;
                (
                    offset,
                    discarding,
                    Opened::Persist(Position { identity: identity.to_string(), offset }),
                )
            }
        };
        let mut open = OpenFile::at(file, identity, offset)
            .await
            .map_err(|source| io_error(&self.path, source))?;
        open.discarding = discarding;
        tracing::info!(
            source = %self.context.source_name,
            path = %self.path.display(),
            %identity,
            offset,
            "Following the file."
        );
        self.current = Some(open);
        Ok(opened)
    }

    /// Looks beside the path for the file with the persisted identity (renamed by rotation while
    /// the source was stopped) and, when found, continues it from the persisted offset; it is
    /// read to its end before the file at the path.
    async fn resume_rotated(&mut self, position: &Position) -> Result<bool, WazuhError> {
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let Some((path, file, metadata)) =
            find_by_identity(&directory, &position.identity)
                .await
                .map_err(|source| WazuhError::Io { path: directory.clone(), source })?
        else {
            return Ok(false);
        };
        let identity = FileIdentity::of(&metadata);
        let offset = if position.offset > metadata.len() {
            count_truncation(&self.context, metadata.len());
            0
        } else {
            position.offset
        };
        let mut open = OpenFile::at(file, identity, offset)
            .await
            .map_err(|source| io_error(&self.path, source))?;
        open.rotation_seen = true;
        tracing::info!(
            source = %self.context.source_name,
            rotated = %path.display(),
            offset,
            "Finishing the file rotated while the source was stopped."
        );
        self.current = Some(open);
        Ok(true)
    }
}

/// Logs and counts a truncation of the followed file.
fn count_truncation(context: &LineContext, size: u64) {
    tracing::warn!(
        source = %context.source_name,
        size,
        "The file was truncated; reading it from the start."
    );
    metrics::counter!(TRUNCATIONS, "source" => context.source_name.to_string()).increment(1);
}

/// An I/O error about the followed path.
fn io_error(path: &Path, source: io::Error) -> WazuhError {
    WazuhError::Io { path: path.to_path_buf(), source }
}

/// The regular file in `directory` whose identity is `identity`: its path, handle and metadata.
async fn find_by_identity(
    directory: &Path,
    identity: &str,
) -> io::Result<Option<(PathBuf, File, std::fs::Metadata)>> {
    let mut entries = tokio::fs::read_dir(directory).await?;
    while let Some(entry) = entries.next_entry().await? {
        let Ok(metadata) = entry.metadata().await else { continue };
        if !metadata.is_file() || FileIdentity::of(&metadata).to_string() != identity {
            continue;
        }
        let path = entry.path();
        let file = File::open(&path).await?;
        let opened = file.metadata().await?;
        if FileIdentity::of(&opened).to_string() == identity {
            return Ok(Some((path, file, opened)));
        }
    }
    Ok(None)
}

/// Where `start_at = "end"` begins: just after the last complete line. When the unterminated
/// tail is longer than a line may be, start at the end and discard up to the next newline.
async fn end_of_last_line(
    file: &mut File,
    size: u64,
    max_line_bytes: usize,
) -> io::Result<(u64, bool)> {
    let limit = size.saturating_sub(max_line_bytes as u64 + 1);
    let mut end = size;
    let mut buffer = vec![0; READ_CHUNK];
    while end > limit {
        let start = end.saturating_sub(READ_CHUNK as u64).max(limit);
        let length = usize::try_from(end - start).unwrap_or(READ_CHUNK).min(READ_CHUNK);
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(&mut buffer[..length]).await?;
        if let Some(newline) = buffer[..length].iter().rposition(|&byte| byte == b'\n') {
            return Ok((start + newline as u64 + 1, false));
        }
        end = start;
    }
    Ok(if limit == 0 { (0, false) } else { (size, true) })
}
