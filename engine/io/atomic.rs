//! Atomic file replacement: write a temporary file in the same folder, fsync it, rename
//! it over the target, fsync the folder. A crash at any point leaves either the old file
//! or the new one, never a mix.
//!
//! Only a regular file (or a new name in an existing folder) is ever replaced: a device,
//! a FIFO, a folder or a read-only file is refused, and a replaced file keeps its
//! permissions. A symbolic link is followed: the file it points to is replaced and the
//! link stays a link. Temporaries left by a save that was killed are removed by the
//! next save to the same file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{}: {why}", path.display()))
}

/// The file a save to `path` replaces or creates, after following symbolic links, or why
/// saving there is refused. Touches nothing.
pub fn save_target(path: &Path) -> io::Result<PathBuf> {
    if path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(refuse(path, "names a folder; name a file in it"));
    }
    let long = path.file_name().map_or(0, |n| n.len());
    if long > super::hidden_name::NAME_MAX {
        return Err(refuse(
            path,
            &format!(
                "the file's name is {long} bytes, and file systems take at most {}",
                super::hidden_name::NAME_MAX
            ),
        ));
    }
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(path) {
            Ok(t) => t,
            // A dangling link: save where it points.
            Err(_) => {
                let to = fs::read_link(path)?;
                match path.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                }
            }
        },
        _ => path.to_path_buf(),
    };
    match fs::metadata(&target) {
        Ok(m) if !m.is_dir() && !m.is_file() => Err(refuse(
            path,
            "is a device, a FIFO or another special file; chainrule saves only over regular files",
        )),
        _ => {
            writable(path, &target)?;
            Ok(target)
        }
    }
}

/// Where a stream of records (`--metrics-out`) may go: as [`save_target`], except that a
/// pipe, a FIFO or a device (`/dev/null`) may take it too.
pub fn stream_target(path: &Path) -> io::Result<()> {
    match fs::metadata(path) {
        Ok(m) if !m.is_dir() && !m.is_file() => Ok(()),
        _ => writable(path, path),
    }
}

/// The rules every output shares: not a folder, not a read-only file, in a folder that
/// exists, and not the file another run is saving to.
fn writable(path: &Path, target: &Path) -> io::Result<()> {
    match fs::metadata(target) {
        Ok(m) if m.is_dir() => Err(refuse(path, "is a folder; name a file in it")),
        Ok(m) if m.permissions().readonly() => Err(refuse(path, "is read-only; chainrule will not replace it")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match folder_of(target).metadata() {
            Ok(d) if d.is_dir() => Ok(()),
            _ => Err(refuse(path, "cannot write there: its folder does not exist")),
        },
        Err(e) => Err(e),
    }?;
    super::lock::not_saved_elsewhere(path, target)
}

/// The folder a file is in (`.` for a bare name).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// What every temporary of saves of `name` starts with: its process id follows.
fn temporary_prefix(name: &str) -> String {
    // u32's longest process id.
    super::hidden_name::hidden_beside(name, ".tmp-", 10)
}

/// The hidden temporary a save of `name` by process `pid` writes first.
fn temporary_name(name: &str, pid: u32) -> String {
    format!("{}{pid}", temporary_prefix(name))
}

/// Removes temporaries of `name` in `dir` left by saves whose process is gone.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = temporary_prefix(name);
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(prefix.as_str()).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        // /proc tells whether the writer still runs; elsewhere, leave it alone.
        let gone = Path::new("/proc").is_dir() && !Path::new("/proc").join(pid.to_string()).exists();
        if gone && pid != std::process::id() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Replaces (or creates) the file at `path` with `bytes`, atomically; see the module's
/// rules for what may be replaced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = save_target(path)?;
    let dir = folder_of(&target);
    let name = target
        .file_name()
        .ok_or_else(|| refuse(path, "names no file"))?
        .to_string_lossy()
        .into_owned();
    remove_stale_temporaries(dir, &name);
    let permissions = fs::metadata(&target).ok().map(|m| m.permissions());
    let tmp = dir.join(temporary_name(&name, std::process::id()));
    let result: io::Result<()> = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if let Some(p) = permissions {
            f.set_permissions(p)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &target)?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: io::Error| {
        let _ = fs::remove_file(&tmp);
        // Name the file: "No space left on device" alone does not say which write failed.
        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
    })
}
