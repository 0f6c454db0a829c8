//! `--metrics-out`: one JSON object per line, flushed as it is written.

use anyhow::Context;
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct MetricsWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsWriter {
    /// Starts a new file, or appends when continuing a resumed run.
    pub fn open(path: &Path, append: bool) -> anyhow::Result<Self> {
        chainrule::io::stream_target(path).map_err(|e| anyhow::anyhow!("--metrics-out {e}"))?;
        let file = match open_fifo_with_reader(path)? {
            Some(fifo) => fifo,
            None => OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(path)
                .with_context(|| format!("--metrics-out {}", path.display()))?,
        };
        Ok(MetricsWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    pub fn write(&mut self, record: &Value) -> anyhow::Result<()> {
        writeln!(self.out, "{record}")
            .and_then(|_| self.out.flush())
            .with_context(|| format!("--metrics-out {}", self.path.display()))
    }
}

/// A FIFO (`mkfifo`, to stream metrics to another program) blocks whoever opens it until
/// a reader comes: with none, say so instead of waiting forever before training. The open
/// that finds the reader is the one written through (made blocking again): opening once to
/// look and again to write would let a reader like `cat` see the first close as the end of
/// the stream and leave, and the second open wait forever. `None`: not a FIFO.
fn open_fifo_with_reader(path: &Path) -> anyhow::Result<Option<File>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    if !std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
        return Ok(None);
    }
    // A non-blocking open for writing fails at once when nothing reads the FIFO.
    let file = match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => anyhow::bail!(
            "--metrics-out {}: a FIFO that nothing reads; start its reader first",
            path.display()
        ),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("--metrics-out {}", path.display()))),
    };
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is the open file above; F_GETFL/F_SETFL only read and set its status flags.
    let blocking = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !blocking {
        let e = std::io::Error::last_os_error();
        return Err(anyhow::Error::new(e).context(format!("--metrics-out {}", path.display())));
    }
    Ok(Some(file))
}
