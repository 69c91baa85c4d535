//! A job's result rows on disk (`rows.ndjson`: one JSON array per row), written as they come and
//! read back in pages from an opaque cursor (the row number and its byte offset).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::Value as Json;

/// The rows file in a job's folder.
pub const ROWS_FILE: &str = "rows.ndjson";

/// Where a page starts: a row number and the byte offset of that row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cursor {
    /// Rows before the page.
    pub row: u64,
    /// Byte offset of the page's first row.
    pub byte: u64,
}

impl Cursor {
    /// The text handed to clients (opaque to them).
    pub fn encode(self) -> String {
        format!("r{:x}o{:x}", self.row, self.byte)
    }

    /// Inverse of [`Cursor::encode`].
    pub fn decode(text: &str) -> Option<Cursor> {
        let (row, byte) = text.strip_prefix('r')?.split_once('o')?;
        Some(Cursor { row: u64::from_str_radix(row, 16).ok()?, byte: u64::from_str_radix(byte, 16).ok()? })
    }
}

/// Appends rows; what is flushed is what readers may see.
#[derive(Debug)]
pub struct RowsWriter {
    file: BufWriter<File>,
    rows: u64,
    bytes: u64,
}

impl RowsWriter {
    /// Creates `folder/rows.ndjson`.
    pub fn create(folder: &Path) -> std::io::Result<RowsWriter> {
        Ok(RowsWriter { file: BufWriter::new(File::create(folder.join(ROWS_FILE))?), rows: 0, bytes: 0 })
    }

    /// Appends one row; answers its size in bytes.
    pub fn append(&mut self, row: &[Json]) -> std::io::Result<u64> {
        let mut line = serde_json::to_vec(row).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.rows += 1;
        self.bytes += line.len() as u64;
        Ok(line.len() as u64)
    }

    /// Flushes; answers the rows and bytes readers may now see.
    pub fn flush(&mut self) -> std::io::Result<(u64, u64)> {
        self.file.flush()?;
        Ok((self.rows, self.bytes))
    }
}

/// Reads at most `limit` rows from `cursor`, never past the `visible` rows / bytes; answers the
/// rows and the cursor after them (`None` when the page reached the visible end).
pub fn read_page(folder: &Path, cursor: Cursor, limit: u64, visible: (u64, u64)) -> std::io::Result<(Vec<Vec<Json>>, Option<Cursor>)> {
    let (visible_rows, visible_bytes) = visible;
    if cursor.row >= visible_rows || cursor.byte >= visible_bytes {
        return Ok((Vec::new(), None));
    }
    let mut file = File::open(folder.join(ROWS_FILE))?;
    file.seek(SeekFrom::Start(cursor.byte))?;
    let mut reader = BufReader::new(file).take(visible_bytes - cursor.byte);
    let mut rows = Vec::new();
    let mut position = cursor;
    let mut line = String::new();
    while (rows.len() as u64) < limit && position.row < visible_rows {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read == 0 {
            break;
        }
        let row: Vec<Json> = serde_json::from_str(line.trim_end()).map_err(std::io::Error::other)?;
        rows.push(row);
        position = Cursor { row: position.row + 1, byte: position.byte + read as u64 };
    }
    let next = (position.row < visible_rows).then_some(position);
    Ok((rows, next))
}

use std::io::Read as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_cursors_and_stop_at_the_visible_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = RowsWriter::create(dir.path()).unwrap();
        for n in 0..10 {
            writer.append(&[Json::from(n), Json::from(format!("row {n}"))]).unwrap();
        }
        let visible = writer.flush().unwrap();
        writer.append(&[Json::from(10), Json::from("not flushed")]).unwrap();
        let mut cursor = Cursor::default();
        let mut seen = Vec::new();
        loop {
            let (rows, next) = read_page(dir.path(), cursor, 3, visible).unwrap();
            seen.extend(rows.into_iter().map(|row| row[0].as_i64().unwrap()));
            match next {
                Some(next) => cursor = Cursor::decode(&next.encode()).unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(Cursor::decode("nonsense"), None);
    }
}
