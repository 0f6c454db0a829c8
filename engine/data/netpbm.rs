//! What a netpbm image must hold past its header: a binary one (P5 gray, P6 color) exactly
//! width × height pixels of 1 or 2 bytes a sample; a plain one (P2, P3) exactly that many
//! decimal samples, none above the header's maxval. The image decoder stops reading at the
//! last pixel and takes a plain sample above maxval as it comes, so bytes or samples past
//! it (a concatenation, a second image, a wrong file) or an impossible sample would pass
//! silently; [`problem`] names them.

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

/// What is wrong with a netpbm image's pixels that the decoder would not say, in words;
/// `None` for a sound one, another format, or a header the decoder refuses by itself.
pub fn problem(bytes: &[u8]) -> Option<String> {
    let extra = extra_bytes(bytes);
    if extra > 0 {
        return Some(format!(
            "{extra} bytes past the image's last pixel (a PGM/PPM holds its header and pixels only)"
        ));
    }
    plain_samples(bytes)
}

/// A plain P2 or P3 image's samples past its last pixel, or one above its maxval.
fn plain_samples(bytes: &[u8]) -> Option<String> {
    let channels = match bytes.get(..2) {
        Some(b"P2") => 1,
        Some(b"P3") => 3,
        _ => return None,
    };
    let (w, h, maxval, offset) = header(bytes)?;
    let needed = w.saturating_mul(h).saturating_mul(channels);
    let text = String::from_utf8_lossy(&bytes[offset..]);
    let samples = text
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace);
    let mut count = 0u64;
    for sample in samples {
        count += 1;
        match sample.parse::<u64>() {
            Ok(v) if v > maxval => {
                return Some(format!("sample {count} is {v}, above the image's maxval {maxval}"));
            }
            Ok(_) if count > needed => {}
            Ok(_) => continue,
            // The decoder names a sample that is not a number.
            Err(_) => return None,
        }
    }
    let extra = count.saturating_sub(needed);
    (extra > 0).then(|| {
        format!(
            "{extra} {} past the image's {w}x{h} pixels (a plain PGM/PPM holds its header and pixels only)",
            if extra == 1 { "sample" } else { "samples" }
        )
    })
}

/// How many bytes a binary P5 or P6 image holds past its last pixel (0 for other formats,
/// and for headers the decoder will refuse by itself).
fn extra_bytes(bytes: &[u8]) -> u64 {
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

    #[test]
    fn plain_samples_past_the_pixels_or_above_maxval_are_named() {
        assert_eq!(problem(b"P2\n2 1\n255\n7 9\n"), None);
        assert_eq!(problem(b"P2\n2 1\n255\n7 # a comment 5 5\n9\n"), None);
        let extra = problem(b"P2\n2 1\n255\n7 9 4 4\n").unwrap();
        assert!(extra.starts_with("2 samples past the image's 2x1 pixels"), "{extra}");
        let high = problem(b"P2\n2 1\n15\n7 16\n").unwrap();
        assert!(high.contains("sample 2 is 16, above the image's maxval 15"), "{high}");
        assert!(problem(b"P3\n1 1\n255\n1 2 3 4\n")
            .unwrap()
            .starts_with("1 sample past"));
    }
}
