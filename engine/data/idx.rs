//! The IDX format of the MNIST files: a big-endian header (magic `0x0000TTNN`, with element
//! type TT and NN dimensions), then NN 32-bit sizes, then the data, big-endian. Every element
//! type of the format is read: 0x08 unsigned bytes (MNIST's), 0x09 signed bytes, 0x0B 16-bit
//! and 0x0C 32-bit integers, 0x0D f32 and 0x0E f64. Gzipped files are recognised by their
//! magic bytes. Nothing is allocated from the header's claims before they are checked
//! against the bytes actually present.

use super::DataError;
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::Path;

pub struct IdxArray {
    pub dims: Vec<usize>,
    pub element: Element,
    /// The elements' bytes as the file holds them (big-endian); for unsigned bytes, the values.
    pub data: Vec<u8>,
}

/// An IDX element type, by the magic number's third byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    U8,
    I8,
    I16,
    I32,
    F32,
    F64,
}

impl Element {
    fn of(code: u8) -> Option<Element> {
        Some(match code {
            0x08 => Element::U8,
            0x09 => Element::I8,
            0x0B => Element::I16,
            0x0C => Element::I32,
            0x0D => Element::F32,
            0x0E => Element::F64,
            _ => return None,
        })
    }

    pub fn bytes(self) -> usize {
        match self {
            Element::U8 | Element::I8 => 1,
            Element::I16 => 2,
            Element::I32 | Element::F32 => 4,
            Element::F64 => 8,
        }
    }

    /// Whether its values are whole numbers (labels must be).
    pub fn integral(self) -> bool {
        !matches!(self, Element::F32 | Element::F64)
    }
}

impl IdxArray {
    /// Every element's value, in order, decoded as it is read (a 60,000-image file of f64
    /// would take 376 MB more to collect first).
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        let e = self.element;
        self.data.chunks_exact(e.bytes()).map(move |b| match e {
            Element::U8 => b[0] as f64,
            Element::I8 => b[0] as i8 as f64,
            Element::I16 => i16::from_be_bytes([b[0], b[1]]) as f64,
            Element::I32 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Element::F32 => f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Element::F64 => f64::from_be_bytes(b.try_into().expect("8 bytes")),
        })
    }
}

/// Whether `bytes` start as an IDX file (not gzipped) does: `0x0000TTNN`.
pub fn is_idx(bytes: &[u8]) -> bool {
    matches!(bytes, [0, 0, t, n, ..] if Element::of(*t).is_some() && (1..=4).contains(n))
}

/// Whether `bytes` start as an IDX file of any rank does (`0x0000TTNN`, a known element
/// type): one of a rank chainrule does not read is still said to be IDX, not text.
pub fn has_idx_magic(bytes: &[u8]) -> bool {
    matches!(bytes, [0, 0, t, _, ..] if Element::of(*t).is_some())
}

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
    let gz = super::gzip::is_gzip(bytes);
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
    if has_idx_magic(&magic) && !is_idx(&magic) {
        return Err(fmt(format!(
            "an IDX header of {} dimensions (magic 0x{:02x}{:02x}{:02x}{:02x}): chainrule reads IDX files of 1 to 4",
            magic[3], magic[0], magic[1], magic[2], magic[3]
        )));
    }
    let Some(element) = Element::of(magic[2]).filter(|_| is_idx(&magic)) else {
        return Err(fmt(format!(
            "wrong magic number 0x{:02x}{:02x}{:02x}{:02x}: not an IDX file (expected 0x0000TTNN: element type TT 08, 09, 0B, 0C, 0D or 0E, and 1 to 4 dimensions NN, as MNIST's 0x00000803)",
            magic[0], magic[1], magic[2], magic[3]
        )));
    };
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
    let claimed = dims
        .iter()
        .try_fold(element.bytes() as u64, |acc, &d| acc.checked_mul(d as u64));
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
    let array = IdxArray { dims, element, data };
    // As the CSV reader: a NaN or infinite input would surface as the model's fault.
    if !element.integral() {
        if let Some((at, v)) = array.values().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(fmt(format!("element {at} is {v}: inputs must be finite numbers")));
        }
    }
    Ok(array)
}

/// `60000x28x28`: dimensions as a person writes them.
pub fn shape_text(dims: &[usize]) -> String {
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idx_file_of_a_rank_chainrule_does_not_read_is_named_as_idx() {
        let mut five = vec![0, 0, 8, 5];
        five.extend([0, 0, 0, 1].repeat(5));
        five.push(7);
        assert!(has_idx_magic(&five) && !is_idx(&five));
        let Err(err) = parse_idx(Path::new("five"), &five) else {
            panic!("a 5-dimensional IDX file was read");
        };
        let err = err.to_string();
        assert!(err.contains("an IDX header of 5 dimensions"), "{err}");
    }
}
