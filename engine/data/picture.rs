//! A single image (PNG, or PGM and the other netpbm formats) as one example: its pixels in
//! gray, row by row, raw 0..255 like an IDX image, for the model's saved normalization to
//! scale.

use super::DataError;
use std::path::Path;

/// The gray pixels of the image at `path`, and its height and width.
pub fn read_gray(path: &Path) -> Result<(Vec<f32>, usize, usize), DataError> {
    let bytes = super::input_file::read_input(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_gray(path, &bytes)
}

/// Whether `bytes` start as a PNG or a netpbm (PGM, PPM, PBM) image does.
pub fn is_picture(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG") || (bytes.len() >= 2 && bytes[0] == b'P' && (b'1'..=b'6').contains(&bytes[1]))
}

/// [`read_gray`] of an image already read (`path` names it in errors).
pub fn decode_gray(path: &Path, bytes: &[u8]) -> Result<(Vec<f32>, usize, usize), DataError> {
    let fmt = |why: String| DataError::Format {
        path: path.to_path_buf(),
        why,
    };
    if let Some(why) = super::netpbm::problem(bytes) {
        return Err(fmt(why));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let picture = reader
        .decode()
        .map_err(|e| fmt(format!("not a PNG or PGM image chainrule can read ({e})")))?;
    let gray = picture.to_luma8();
    let (w, h) = gray.dimensions();
    Ok((
        gray.into_raw().into_iter().map(f32::from).collect(),
        h as usize,
        w as usize,
    ))
}
