//! The IDX format of the MNIST files: a big-endian header (magic `0x0000TTNN`, with type
//! TT = 0x08 for unsigned bytes and NN dimensions), then NN 32-bit sizes, then the data.
//! Gzipped files are recognised by their magic bytes. Nothing is allocated from the
//! header's claims before they are checked against the bytes actually present.

use super::DataError;
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::Path;

pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let bytes = super::input_file::read_input(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_idx(path, &bytes)
}

/// Parses IDX bytes (gzipped or not); `path` only names the source in errors.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<IdxArray, DataError> {
    let fmt = |why: String| DataError::Format {
        path: path.to_path_buf(),
        why,
    };
    let gz = bytes.starts_with(&GZIP_MAGIC);
    let mut reader: Box<dyn Read> = if gz {
        // Concatenated members (`cat a.gz b.gz`, pigz, bgzip) are one stream.
        Box::new(MultiGzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };

    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .map_err(|e| fmt(format!("cannot read the IDX header ({e})")))?;
    if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 || magic[3] > 4 {
        return Err(fmt(format!(
            "wrong magic number 0x{:02x}{:02x}{:02x}{:02x}: not an IDX file of unsigned bytes (expected 0x00000801 or 0x00000803)",
            magic[0], magic[1], magic[2], magic[3]
        )));
    }
    let ndims = magic[3] as usize;
    let mut dims = Vec::with_capacity(ndims);
    for _ in 0..ndims {
        let mut d = [0u8; 4];
        reader
            .read_exact(&mut d)
            .map_err(|_| fmt("the header is truncated".into()))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let header_len = 4 + 4 * ndims as u64;
    let claimed = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let Some(claimed) = claimed else {
        return Err(fmt(format!("header dimensions {} overflow", shape_text(&dims))));
    };
    if !gz && bytes.len() as u64 != header_len + claimed {
        return Err(fmt(format!(
            "header dimensions {} need {claimed} data bytes but the file has {}",
            shape_text(&dims),
            (bytes.len() as u64).saturating_sub(header_len)
        )));
    }
    // Reading through `take` grows the buffer only as real bytes arrive.
    let mut data = Vec::new();
    reader
        .take(claimed + 1)
        .read_to_end(&mut data)
        .map_err(|e| fmt(format!("cannot decompress or read the data ({e})")))?;
    if data.len() as u64 != claimed {
        let got = if data.len() as u64 > claimed {
            "more".to_string()
        } else {
            data.len().to_string()
        };
        return Err(fmt(format!(
            "header dimensions {} need {claimed} data bytes but the file has {got}",
            shape_text(&dims)
        )));
    }
    Ok(IdxArray { dims, data })
}

/// `60000x28x28`: dimensions as a person writes them.
pub fn shape_text(dims: &[usize]) -> String {
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}
