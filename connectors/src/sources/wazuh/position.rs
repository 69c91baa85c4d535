//! The persisted read position of the tailer (`positions/wazuh-<name>.json`), written atomically.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::WazuhError;

/// How far the tailer has durably delivered: every line before `offset` of the file with
/// `identity` is durable in the store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Position {
    /// The file's identity, `<dev>:<inode>`.
    pub identity: String,
    /// Byte offset of the first line not yet delivered.
    pub offset: u64,
}

/// Loads and saves one source's position file.
#[derive(Debug, Clone)]
pub struct PositionStore {
    path: PathBuf,
}

impl PositionStore {
    /// The store for source `name` under `data_dir/positions/`, creating that directory.
    pub fn open(data_dir: &Path, name: &str) -> Result<PositionStore, WazuhError> {
        let directory = data_dir.join("positions");
        fs::create_dir_all(&directory)
            .map_err(|source| WazuhError::Io { path: directory.clone(), source })?;
        Ok(PositionStore { path: directory.join(format!("wazuh-{name}.json")) })
    }

    /// The position file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The persisted position, or `None` when there is none yet.
    pub fn load(&self) -> Result<Option<Position>, WazuhError> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(WazuhError::Io { path: self.path.clone(), source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| WazuhError::PositionFormat { path: self.path.clone(), source })
    }

    /// Persists `position`: temp file, fsync, rename over the old file, fsync the directory,
    /// so a crash leaves either the old or the new position, never a torn one.
    pub async fn save(&self, position: &Position) -> Result<(), WazuhError> {
        let path = self.path.clone();
        let text = serde_json::to_vec(position)
            .map_err(|source| WazuhError::PositionFormat { path: path.clone(), source })?;
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&target, &text))
            .await
            .map_err(|error| WazuhError::Io {
                path: path.clone(),
                source: io::Error::other(error),
            })?
            .map_err(|source| WazuhError::Io { path, source })
    }
}

/// Writes `contents` to `path` through a temporary sibling and a rename.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    if let Some(directory) = path.parent() {
        fs::File::open(directory)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn save_then_load_round_trips_and_leaves_no_temporary_file() {
        let data_dir = tempfile::tempdir().unwrap();
        let store = PositionStore::open(data_dir.path(), "main").unwrap();
        assert_eq!(store.load().unwrap(), None);
        assert_eq!(store.path(), data_dir.path().join("positions/wazuh-main.json"));

        let first = Position { identity: "2049:77".to_string(), offset: 120 };
        store.save(&first).await.unwrap();
        assert_eq!(store.load().unwrap(), Some(first));
        let second = Position { identity: "2049:78".to_string(), offset: 0 };
        store.save(&second).await.unwrap();
        assert_eq!(store.load().unwrap(), Some(second));

        let names: Vec<_> = fs::read_dir(data_dir.path().join("positions"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["wazuh-main.json".to_string()]);
    }

    #[test]
    fn corrupt_position_file_is_an_error_not_a_silent_restart() {
        let data_dir = tempfile::tempdir().unwrap();
        let store = PositionStore::open(data_dir.path(), "main").unwrap();
        fs::write(store.path(), b"{\"identity\":").unwrap();
        assert!(matches!(store.load(), Err(WazuhError::PositionFormat { .. })));
    }
}
