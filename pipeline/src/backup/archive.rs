//! The backup file itself: copying a data directory aside, and a gzip-compressed tar archive of it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// Copies the regular files under `from` to `to` (created), except the paths in `skip`
/// (relative to `from`), and returns the copied paths relative to `from`. A file deleted while
/// the copy runs (a journal segment whose records were stored meanwhile) is left out; a symbolic
/// link or other special file is refused.
pub fn copy_tree(from: &Path, to: &Path, skip: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut copied = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        std::fs::create_dir_all(to.join(&relative))?;
        let mut entries: Vec<_> = std::fs::read_dir(from.join(&relative))
            .with_context(|| format!("cannot list {}", from.join(&relative).display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let path = relative.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(path);
            } else if skip.contains(&path) {
                continue;
            } else if kind.is_file() {
                match std::fs::copy(from.join(&path), to.join(&path)) {
                    Ok(_) => copied.push(path),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error).with_context(|| format!("cannot copy {}", from.join(&path).display())),
                }
            } else {
                bail!("{} is not a regular file or directory: the data directory holds only those", from.join(&path).display());
            }
        }
    }
    copied.sort();
    Ok(copied)
}

/// Writes the tree under `from` as a `.tar.gz` to `to` (through `to.partial`, renamed once
/// synced, so `to` is never a half-written archive); returns its size in bytes.
pub fn write(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let partial = PathBuf::from(format!("{}.partial", to.display()));
    let file = File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut builder = tar::Builder::new(GzEncoder::new(BufWriter::new(file), flate2::Compression::fast()));
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    builder.append_path_with_name(from.join("manifest.json"), "manifest.json")?;
    builder.append_dir_all("data", from.join("data"))?;
    let mut writer = builder.into_inner()?.finish()?;
    writer.flush()?;
    let file = writer.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()?;
    std::fs::rename(&partial, to)?;
    Ok(std::fs::metadata(to)?.len())
}

/// Unpacks the archive `from` into `to`: only regular files and directories, at relative paths
/// that stay inside `to`.
pub fn unpack(from: &Path, to: &Path) -> anyhow::Result<()> {
    let file = File::open(from).with_context(|| format!("cannot open the backup {}", from.display()))?;
    std::fs::create_dir_all(to)?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let unreadable = || format!("{} is not a readable SecureWatch backup (a .tar.gz written by `securewatch backup`)", from.display());
    for entry in archive.entries().with_context(unreadable)? {
        let mut entry = entry.with_context(unreadable)?;
        let path = entry.path().with_context(unreadable)?.into_owned();
        let inside = path.components().all(|component| matches!(component, Component::Normal(_) | Component::CurDir));
        let kind = entry.header().entry_type();
        if !inside || !(kind.is_file() || kind.is_dir()) {
            bail!("{}: refusing the entry {} ({:?}): only files and directories inside the archive", from.display(), path.display(), kind);
        }
        if !entry.unpack_in(to).with_context(unreadable)? {
            bail!("{}: the entry {} would land outside the data directory", from.display(), path.display());
        }
    }
    Ok(())
}

/// Makes `dir` and everything under it private to the owner: directories 0700, files 0600.
pub fn make_private(dir: &Path) -> anyhow::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_private(&entry.path())?;
        } else {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_survives_the_archive_and_skipped_files_stay_out() {
        let scratch = tempfile::tempdir().unwrap();
        let source = scratch.path().join("source");
        std::fs::create_dir_all(source.join("journal")).unwrap();
        std::fs::write(source.join("journal/0.journal"), b"records").unwrap();
        std::fs::write(source.join("hec_token"), b"token").unwrap();
        std::fs::write(source.join("store.db"), b"not copied").unwrap();
        let staging = scratch.path().join("staging");
        let copied = copy_tree(&source, &staging.join("data"), &[PathBuf::from("store.db")]).unwrap();
        assert_eq!(copied, [PathBuf::from("hec_token"), PathBuf::from("journal/0.journal")]);
        std::fs::write(staging.join("manifest.json"), b"{}").unwrap();
        let archive = scratch.path().join("backup.tar.gz");
        assert!(write(&staging, &archive).unwrap() > 0);
        let unpacked = scratch.path().join("unpacked");
        unpack(&archive, &unpacked).unwrap();
        assert_eq!(std::fs::read(unpacked.join("data/journal/0.journal")).unwrap(), b"records");
        assert!(!unpacked.join("data/store.db").exists());
        make_private(&unpacked).unwrap();
        let mode = std::fs::metadata(unpacked.join("data/hec_token")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn links_and_paths_outside_are_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let source = scratch.path().join("source");
        std::fs::create_dir_all(&source).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", source.join("link")).unwrap();
        let error = copy_tree(&source, &scratch.path().join("copy"), &[]).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");

        // An archive with a symbolic link entry, as a hostile or foreign file could hold.
        let archive = scratch.path().join("evil.tar.gz");
        let mut builder = tar::Builder::new(GzEncoder::new(File::create(&archive).unwrap(), flate2::Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "data/hec_token", "/etc/shadow").unwrap();
        builder.into_inner().unwrap().finish().unwrap();
        let error = unpack(&archive, &scratch.path().join("out")).unwrap_err().to_string();
        assert!(error.contains("refusing the entry data/hec_token"), "{error}");

        std::fs::write(scratch.path().join("plain.txt"), b"hello").unwrap();
        let error = format!("{:#}", unpack(&scratch.path().join("plain.txt"), &scratch.path().join("out2")).unwrap_err());
        assert!(error.contains("not a readable SecureWatch backup"), "{error}");
    }
}
