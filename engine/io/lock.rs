//! One run saves to a file at a time: a run that saves holds an advisory lock on a hidden
//! `.NAME.lock` beside the file for as long as it runs, so a second run saving to the same
//! file is refused up front instead of silently overwriting the first run's saves. The
//! operating system drops the lock when a run dies, however it dies. Every other write
//! ([`save_target`], [`super::atomic::stream_target`]) checks the lock too, so no plot,
//! export or metrics file of another command replaces the file a run saves to.

use super::atomic::{folder_of, save_target};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct SaveLock {
    lock: PathBuf,
    _file: File,
    /// Whether removing the lock file on release is ours to do: this run made it, or it is
    /// an empty one a killed run left (never a file of the user's that shares its name).
    remove: bool,
}

/// The locks this process holds: it may replace its own saves.
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lock file of saves to `target` (a path [`save_target`] resolved).
fn lock_of(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or("save".into(), |n| n.to_string_lossy().into_owned());
    folder_of(target).join(super::hidden_name::hidden_beside(&name, ".lock", 0))
}

fn saving_elsewhere(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("{}: another chainrule run is saving to this file", path.display()),
    )
}

/// Fails when another process holds the save lock of `target` (`path` as the user gave
/// it): every write chainrule makes (a model, a plot, an export, metrics) keeps off a file
/// a running training run saves to.
pub fn not_saved_elsewhere(path: &Path, target: &Path) -> io::Result<()> {
    let lock = lock_of(target);
    if held().contains(&lock) {
        return Ok(());
    }
    let Ok(file) = File::open(&lock) else {
        return Ok(());
    };
    // Shared: checkers never stop each other; a run holding it exclusively stops them all.
    match file.try_lock_shared() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(saving_elsewhere(path)),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

impl SaveLock {
    /// Locks the file a save to `path` would write (see [`save_target`]).
    pub fn acquire(path: &Path) -> io::Result<Self> {
        let target = save_target(path)?;
        let lock = lock_of(&target);
        if held().contains(&lock) {
            // Another output of this very run resolves to the same file (through a link).
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{}: this run already writes that file under another output flag (the two paths lead to one file); give each output a file of its own",
                    path.display()
                ),
            ));
        }
        let remove = fs::metadata(&lock).map_or(true, |m| m.is_file() && m.len() == 0);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)?;
        match file.try_lock() {
            Ok(()) => {
                held().push(lock.clone());
                Ok(SaveLock {
                    lock,
                    _file: file,
                    remove,
                })
            }
            Err(TryLockError::WouldBlock) => Err(saving_elsewhere(path)),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

impl Drop for SaveLock {
    fn drop(&mut self) {
        held().retain(|l| l != &self.lock);
        // Still locked here, so no other run is between opening and locking it.
        if self.remove {
            let _ = fs::remove_file(&self.lock);
        }
    }
}
