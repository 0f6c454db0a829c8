//! Timing for `bench`, `remat` and `scale`: untimed warm-up runs first (thread pools,
//! allocator, caches), then the median of the timed ones, which shrugs off the odd slow
//! run on a noisy machine.

use std::time::Instant;

/// Seconds of the runs after the first `warmup`.
pub struct Timings {
    warmup: usize,
    seen: usize,
    seconds: Vec<f64>,
}

impl Timings {
    pub fn after_warmup(warmup: usize) -> Self {
        Timings {
            warmup,
            seen: 0,
            seconds: Vec::new(),
        }
    }

    /// Runs `f` and records how long it took, unless it is a warm-up run.
    pub fn time<T>(&mut self, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let started = Instant::now();
        let out = f()?;
        self.record(started.elapsed().as_secs_f64());
        Ok(out)
    }

    /// Records a run timed elsewhere (on a device's own clock), unless it is a warm-up run.
    pub fn record(&mut self, seconds: f64) {
        if self.seen >= self.warmup {
            self.seconds.push(seconds);
        }
        self.seen += 1;
    }

    /// The median timed run, in seconds (NaN when none was timed).
    pub fn median(&self) -> f64 {
        let mut v = self.seconds.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// Half the timed runs' range over their median: how far apart two runs of the same
    /// work fell here (NaN when none was timed).
    pub fn relative_spread(&self) -> f64 {
        let (lo, hi) = self
            .seconds
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
                (lo.min(s), hi.max(s))
            });
        (hi - lo) / 2.0 / self.median()
    }
}
