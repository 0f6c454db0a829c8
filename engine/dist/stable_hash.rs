//! A 64-bit hash that is the same on every machine and build, for the fingerprints the ranks
//! of a job compare (std's `DefaultHasher` promises neither): FNV-1a over 8-byte words, each
//! write closed by its length (so `ab`,`c` and `a`,`bc` differ), then a finalizer that makes
//! every bit of the result depend on every bit written.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Clone, Debug)]
pub struct StableHash(u64);

impl Default for StableHash {
    fn default() -> Self {
        StableHash(OFFSET)
    }
}

impl StableHash {
    pub fn new() -> Self {
        Self::default()
    }

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(PRIME);
    }

    /// Adds `bytes`, as one write.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        self.word(u64::from_le_bytes(tail));
        self.word(bytes.len() as u64);
        self
    }

    /// Adds `values` bit for bit (so -0.0 and 0.0, or two NaNs, differ), as one write.
    pub fn floats(&mut self, values: impl IntoIterator<Item = f32>) -> &mut Self {
        let (mut count, mut pending) = (0u64, None::<u32>);
        for v in values {
            count += 1;
            match pending.take() {
                None => pending = Some(v.to_bits()),
                Some(low) => self.word(u64::from(low) | (u64::from(v.to_bits()) << 32)),
            }
        }
        self.word(pending.map_or(0, u64::from));
        self.word(count);
        self
    }

    /// The hash of everything written (murmur3's finalizer over FNV's state).
    pub fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed_and_each_write_is_closed_by_its_length() {
        let hash = |writes: &[&[u8]]| {
            let mut h = StableHash::new();
            writes.iter().for_each(|w| {
                h.bytes(w);
            });
            h.finish()
        };
        // The same on every build and machine (worked by hand from the constants above).
        assert_eq!(hash(&[b"chainrule"]), 0x8e34_a5aa_39c9_7371);
        assert_ne!(hash(&[b"ab", b"c"]), hash(&[b"a", b"bc"]));
        assert_ne!(hash(&[b""]), hash(&[b"\0"]));
        let floats = |v: &[f32]| StableHash::new().floats(v.iter().copied()).finish();
        assert_ne!(floats(&[0.0]), floats(&[-0.0]));
        assert_ne!(floats(&[1.0, 2.0, 3.0]), floats(&[1.0, 2.0]));
        assert_ne!(floats(&[]), floats(&[0.0]));
    }
}
