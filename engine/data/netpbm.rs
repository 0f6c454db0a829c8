//! The length a binary netpbm image (P5 gray, P6 color) must have: its header, then exactly
//! width × height pixels of 1 or 2 bytes a sample. The image decoder stops reading at the
//! last pixel, so bytes past it (a truncated concatenation, a second image, a wrong file)
//! would be ignored silently; [`extra_bytes`] finds them.

/// The header's numbers: magic, then width, height and maxval, separated by whitespace and
/// `#` comments, then one whitespace byte; returns (width, height, maxval, data offset).
fn header(bytes: &[u8]) -> Option<(u64, u64, u64, usize)> {
    let mut at = 2;
    let mut numbers = [0u64; 3];
    for n in &mut numbers {
        loop {
            match bytes.get(at)? {
                b'#' => at += bytes[at..].iter().position(|&b| b == b'\n')?,
                b if b.is_ascii_whitespace() => at += 1,
                _ => break,
            }
        }
        let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        *n = std::str::from_utf8(&bytes[at..at + digits]).ok()?.parse().ok()?;
        at += digits;
    }
    bytes.get(at).filter(|b| b.is_ascii_whitespace())?;
    let [w, h, maxval] = numbers;
    Some((w, h, maxval, at + 1))
}

/// How many bytes a binary P5 or P6 image holds past its last pixel (0 for other formats,
/// and for headers the decoder will refuse by itself).
pub fn extra_bytes(bytes: &[u8]) -> u64 {
    let channels = match bytes.get(..2) {
        Some(b"P5") => 1,
        Some(b"P6") => 3,
        _ => return 0,
    };
    let Some((w, h, maxval, offset)) = header(bytes) else {
        return 0;
    };
    let sample = if maxval > 255 { 2 } else { 1 };
    let needed = (offset as u64).saturating_add(w.saturating_mul(h).saturating_mul(channels * sample));
    (bytes.len() as u64).saturating_sub(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_past_the_pixels_are_counted_through_comments_and_wide_samples() {
        let mut p5 = b"P5\n# a comment\n2 2\n255\n".to_vec();
        p5.extend([1, 2, 3, 4]);
        assert_eq!(extra_bytes(&p5), 0);
        p5.extend(b"xyz");
        assert_eq!(extra_bytes(&p5), 3);
        let mut wide = b"P5 1 1 65535 ".to_vec();
        wide.extend([0, 7, 9]);
        assert_eq!(extra_bytes(&wide), 1);
        assert_eq!(extra_bytes(b"P2\n1 1\n255\n7\n"), 0);
    }
}
