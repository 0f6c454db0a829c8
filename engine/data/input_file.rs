//! Reading a file a user names as input (data, a saved model, a picture): a regular file
//! that fits in free memory, or a FIFO someone writes to. A device (`/dev/zero`,
//! `/dev/urandom`) never ends and would be read until memory runs out, so it is refused,
//! as is a regular file larger than the memory free to hold it.

use std::io;
use std::path::Path;

/// The bytes of the input file at `path` (the caller names the path in its error).
pub fn read_input(path: &Path) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileTypeExt;
    let named = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    let meta = std::fs::metadata(path)?;
    let kind = meta.file_type();
    if kind.is_char_device() || kind.is_block_device() || kind.is_socket() {
        return Err(named(
            "is a device or a socket, not a file; chainrule reads regular files (or a FIFO)".into(),
        ));
    }
    if meta.is_dir() {
        return Err(named("is a folder; name a file".into()));
    }
    if let Some(free) = crate::memory::available_memory().filter(|&free| meta.is_file() && meta.len() > free) {
        return Err(named(format!(
            "is {} bytes, more than the {free} bytes of memory free to read it",
            meta.len()
        )));
    }
    std::fs::read(path)
}

/// The bytes of the input file at `path`, as [`read_input`] reads them, decompressed when
/// gzipped.
pub fn read_input_text(path: &Path) -> io::Result<Vec<u8>> {
    decompressed(read_input(path)?)
}

/// The bytes a user's input names: standard input for `-`, else the file at `path` (as
/// [`read_input_text`] reads it); decompressed when gzipped, whichever it is.
pub fn read_input_or_stdin(path: &Path) -> io::Result<Vec<u8>> {
    if path.as_os_str() != "-" {
        return read_input_text(path);
    }
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut all)
        .map_err(|e| io::Error::new(e.kind(), format!("reading standard input: {e}")))?;
    decompressed(all)
}

fn decompressed(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
    match super::gzip::is_gzip(&bytes) {
        true => super::gzip::gunzip(&bytes),
        false => Ok(bytes),
    }
}
