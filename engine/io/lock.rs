//! One run saves to a file at a time: a run that saves holds an advisory lock on a hidden
//! `.NAME.lock` beside the file for as long as it runs, so a second run saving to the same
//! file is refused up front instead of silently overwriting the first run's saves. The
//! operating system drops the lock when a run dies, however it dies.

use super::atomic::{folder_of, save_target};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

pub struct SaveLock {
    lock: PathBuf,
    _file: File,
}

impl SaveLock {
    /// Locks the file a save to `path` would write (see [`save_target`]).
    pub fn acquire(path: &Path) -> io::Result<Self> {
        let target = save_target(path)?;
        let name = target
            .file_name()
            .map_or("save".into(), |n| n.to_string_lossy().into_owned());
        let lock = folder_of(&target).join(format!(".{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)?;
        match file.try_lock() {
            Ok(()) => Ok(SaveLock { lock, _file: file }),
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{}: another chainrule run is saving to this file", path.display()),
            )),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

impl Drop for SaveLock {
    fn drop(&mut self) {
        // Still locked here, so no other run is between opening and locking it.
        let _ = fs::remove_file(&self.lock);
    }
}
