//! Counter-based random numbers: every draw is a pure function of its key, so any
//! element can be (re)generated alone, in any order, on any device. Dropout masks and
//! data shuffling both come from here; recomputing a node replays its numbers exactly.

/// SplitMix64's finaliser: a bijective 64-bit mix with full avalanche.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit random value for the key (seed, stream, key, counter).
pub fn draw(seed: u64, stream: u64, key: u64, counter: u64) -> u64 {
    mix64(prefix(seed, stream, key) ^ counter)
}

/// Everything of [`draw`] but the counter: kernels get this once and mix in the element index.
pub fn prefix(seed: u64, stream: u64, key: u64) -> u64 {
    prefix_from(stream_prefix(seed, stream), key)
}

/// The part of [`prefix`] fixed for a run: the GPU's dropout kernel mixes in the key on the
/// device (kernels/dropout.cu), whose step it reads there.
pub fn stream_prefix(seed: u64, stream: u64) -> u64 {
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    mix64(mix64(seed ^ GOLDEN) ^ stream.wrapping_mul(GOLDEN))
}

/// [`prefix`] from its [`stream_prefix`]; kernels/dropout.cu has the same line.
pub fn prefix_from(stream_prefix: u64, key: u64) -> u64 {
    mix64(stream_prefix ^ key.wrapping_add(0x632b_e59b_d9b4_e019))
}

/// Uniform in [0, 1) with 53 random bits.
pub fn uniform(seed: u64, stream: u64, key: u64, counter: u64) -> f64 {
    uniform_at(prefix(seed, stream, key), counter)
}

/// [`uniform`] from its [`prefix`], made once for many counters (a dropout mask's elements).
pub fn uniform_at(prefix: u64, counter: u64) -> f64 {
    (mix64(prefix ^ counter) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A small sequential generator for initialisation and shuffling, seeded from a key.
#[derive(Clone, Debug)]
pub struct KeyedRng {
    seed: u64,
    stream: u64,
    counter: u64,
}

impl KeyedRng {
    pub fn new(seed: u64, stream: u64) -> Self {
        KeyedRng {
            seed,
            stream,
            counter: 0,
        }
    }
    pub fn next_u64(&mut self) -> u64 {
        self.counter += 1;
        draw(self.seed, self.stream, 0, self.counter)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Standard normal by Box-Muller.
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    /// Unbiased integer in [0, n) (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }
    /// A uniformly random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// Stream ids, so that no two uses of one seed share numbers.
pub mod stream {
    pub const DROPOUT: u64 = 1;
    pub const INIT: u64 = 2;
    pub const SHUFFLE: u64 = 3;
    pub const DATA_SPLIT: u64 = 4;
    pub const TEST_DATA: u64 = 5;
    pub const AUGMENT: u64 = 6;
    pub const VALIDATION_SPLIT: u64 = 7;
}
