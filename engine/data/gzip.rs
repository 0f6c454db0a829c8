//! Gzipped input, as pandas and PyTorch users hand it over (`data.csv.gz`): known by its
//! magic bytes, whatever the name, and decompressed whole (every member, as `cat a.gz b.gz`
//! and pigz write them), up to the memory free to hold it.

use flate2::read::MultiGzDecoder;
use std::io::{self, Read};

pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// `bytes` decompressed; an error says why (a corrupt stream, or more than fits in memory).
pub fn gunzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let limit = crate::memory::available_memory().unwrap_or(u64::MAX);
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not a valid gzip file ({e})")))?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("decompresses to more than the {limit} bytes of memory free to hold it"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn members_are_joined_and_a_corrupt_stream_is_named() {
        let member = |text: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        };
        let mut two = member(b"0,1\n");
        two.extend(member(b"1,2\n"));
        assert!(is_gzip(&two));
        assert_eq!(gunzip(&two).unwrap(), b"0,1\n1,2\n");
        let mut cut = member(b"0,1,2,3,4,5\n");
        cut.truncate(cut.len() - 6);
        assert!(gunzip(&cut).unwrap_err().to_string().contains("not a valid gzip file"));
    }
}
