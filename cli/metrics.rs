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
        refuse_fifo_without_reader(path)?;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .with_context(|| format!("--metrics-out {}", path.display()))?;
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
/// a reader comes: with none, say so instead of waiting forever before training.
fn refuse_fifo_without_reader(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_fifo() {
        return Ok(());
    }
    // A non-blocking open for writing fails at once when nothing reads the FIFO.
    match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => anyhow::bail!(
            "--metrics-out {}: a FIFO that nothing reads; start its reader first",
            path.display()
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!("--metrics-out {}", path.display()))),
    }
}
