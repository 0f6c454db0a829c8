//! Memory accounting. Every buffer a backend hands out carries a ticket that counts its
//! bytes under one category while it lives; the tracker keeps live and peak bytes.

use serde::Serialize;
use std::fmt;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Category {
    Parameters,
    Gradients,
    OptimizerState,
    /// Forward tensors kept alive because backward reads them.
    SavedActivations,
    /// Everything else: forward tensors used only by the forward, backward intermediates, inputs.
    Temporaries,
    /// Forward tensors computed again during backward because a checkpoint plan dropped them.
    Recomputed,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Parameters,
        Category::Gradients,
        Category::OptimizerState,
        Category::SavedActivations,
        Category::Temporaries,
        Category::Recomputed,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Category::Parameters => "parameters",
            Category::Gradients => "gradients",
            Category::OptimizerState => "optimizer_state",
            Category::SavedActivations => "saved_activations",
            Category::Temporaries => "temporaries",
            Category::Recomputed => "recomputed",
        }
    }
}

/// Bytes split by category.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Serialize)]
pub struct ByCategory {
    pub parameters: u64,
    pub gradients: u64,
    pub optimizer_state: u64,
    pub saved_activations: u64,
    pub temporaries: u64,
    pub recomputed: u64,
}

impl ByCategory {
    pub fn get(&self, c: Category) -> u64 {
        match c {
            Category::Parameters => self.parameters,
            Category::Gradients => self.gradients,
            Category::OptimizerState => self.optimizer_state,
            Category::SavedActivations => self.saved_activations,
            Category::Temporaries => self.temporaries,
            Category::Recomputed => self.recomputed,
        }
    }
    pub fn get_mut(&mut self, c: Category) -> &mut u64 {
        match c {
            Category::Parameters => &mut self.parameters,
            Category::Gradients => &mut self.gradients,
            Category::OptimizerState => &mut self.optimizer_state,
            Category::SavedActivations => &mut self.saved_activations,
            Category::Temporaries => &mut self.temporaries,
            Category::Recomputed => &mut self.recomputed,
        }
    }
    pub fn total(&self) -> u64 {
        Category::ALL.iter().map(|&c| self.get(c)).sum()
    }
}

/// Live and peak bytes. `peak` holds each category's own maximum; `at_peak` the split at
/// the moment the total peaked.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Serialize)]
pub struct MemoryReport {
    pub live: ByCategory,
    pub peak: ByCategory,
    pub peak_total: u64,
    pub at_peak: ByCategory,
}

impl MemoryReport {
    /// Accounts `bytes` more under `c`, updating the peaks.
    pub fn add(&mut self, c: Category, bytes: u64) {
        *self.live.get_mut(c) += bytes;
        let now = self.live.get(c);
        let p = self.peak.get_mut(c);
        *p = (*p).max(now);
        let total = self.live.total();
        if total > self.peak_total {
            self.peak_total = total;
            self.at_peak = self.live;
        }
    }
    pub fn remove(&mut self, c: Category, bytes: u64) {
        *self.live.get_mut(c) -= bytes;
    }
    /// Starts a new peak window at the current live bytes.
    pub fn reset_peak(&mut self) {
        self.peak = self.live;
        self.peak_total = self.live.total();
        self.at_peak = self.live;
    }
}

/// The largest tensor, and the largest model, chainrule plans for: 256 TiB, beyond any
/// device, and small enough that sums of thousands of such sizes cannot wrap around.
pub const MAX_TENSOR_BYTES: u64 = 1 << 48;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MemoryError {
    #[error(
        "out of memory: {requested} bytes requested for {category} with {live} live of a {limit}-byte limit ({free} free); {}",
        out_of_memory_advice(.category)
    )]
    OutOfMemory {
        requested: u64,
        category: &'static str,
        live: u64,
        limit: u64,
        free: u64,
    },
}

/// What helps when `category` runs out: a step's tensors shrink with the batch and the
/// checkpoint policy, the model's own state does not.
fn out_of_memory_advice(category: &str) -> &'static str {
    match category {
        "parameters" | "optimizer_state" | "the parameters and optimizer state" => {
            "the model and its optimizer state alone do not fit: use a smaller model, an optimizer with less state (sgd), or a larger limit"
        }
        _ => "try a smaller --batch-size or a --checkpoint policy",
    }
}

/// The memory this machine can still give a process (Linux's MemAvailable), if known.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Counts bytes for one device. Optionally enforces a limit, as a GPU's capacity would.
#[derive(Debug, Default)]
pub struct MemoryTracker {
    report: Mutex<MemoryReport>,
    limit: Option<u64>,
}

impl MemoryTracker {
    pub fn new(limit: Option<u64>) -> Arc<Self> {
        Arc::new(MemoryTracker {
            report: Mutex::new(MemoryReport::default()),
            limit,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryReport> {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn allocate(self: &Arc<Self>, category: Category, bytes: u64) -> Result<Ticket, MemoryError> {
        let mut r = self.lock();
        if let Some(limit) = self.limit {
            let live = r.live.total();
            if live + bytes > limit {
                return Err(MemoryError::OutOfMemory {
                    requested: bytes,
                    category: category.name(),
                    live,
                    limit,
                    free: limit.saturating_sub(live),
                });
            }
        }
        r.add(category, bytes);
        Ok(Ticket {
            tracker: Arc::clone(self),
            category,
            bytes,
        })
    }

    pub fn report(&self) -> MemoryReport {
        *self.lock()
    }
    pub fn reset_peak(&self) {
        self.lock().reset_peak();
    }
    /// Counts a replay of work whose allocations this tracker saw once, as `window`: a
    /// captured GPU step replays the same buffers with nothing for the host to count, and
    /// its peaks count again.
    pub fn replay(&self, window: &MemoryReport) {
        let mut r = self.lock();
        for c in Category::ALL {
            let peak = r.peak.get_mut(c);
            *peak = (*peak).max(window.peak.get(c));
        }
        if window.peak_total > r.peak_total {
            r.peak_total = window.peak_total;
            r.at_peak = window.at_peak;
        }
    }
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }
}

/// Proof of an allocation: returns its bytes to the tracker when dropped.
#[derive(Debug)]
pub struct Ticket {
    tracker: Arc<MemoryTracker>,
    category: Category,
    bytes: u64,
}

impl Ticket {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    pub fn category(&self) -> Category {
        self.category
    }
}

impl Ticket {
    /// Counts the same bytes under another category from now on.
    pub fn recategorize(&mut self, to: Category) {
        if to != self.category {
            let mut r = self.tracker.lock();
            r.remove(self.category, self.bytes);
            r.add(to, self.bytes);
            self.category = to;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.tracker.lock().remove(self.category, self.bytes);
    }
}

/// Parses sizes like `1.5GiB`, `800MB`, `123456` (bytes).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.trim().parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        // A byte count is whole: `1.5` is a typo for a unit, not one byte.
        "" | "b" if v.fract() != 0.0 => return None,
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        _ => return None,
    };
    // Whole bytes that a u64 holds; a size that is not zero does not round down to zero.
    let bytes = v * mult;
    let fits = v >= 0.0 && bytes < u64::MAX as f64 && !(v > 0.0 && bytes < 1.0);
    fits.then_some(bytes as u64)
}

/// Human-readable bytes (binary units).
pub struct Bytes(pub u64);

impl Bytes {
    /// A size in the largest unit that reads well, rounded up at two decimals, so that a
    /// budget named from it holds at least these bytes (`24.00MiB`, no space: a flag's value).
    pub fn at_least(bytes: u64) -> String {
        const UNITS: [(&str, f64); 4] = [
            ("TiB", 1099511627776.0),
            ("GiB", 1073741824.0),
            ("MiB", 1048576.0),
            ("KiB", 1024.0),
        ];
        for (unit, size) in UNITS {
            if bytes as f64 >= size {
                let v = (bytes as f64 / size * 100.0).ceil() / 100.0;
                return format!("{v:.2}{unit}");
            }
        }
        format!("{bytes}B")
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = b;
        let mut u = 0;
        while v >= 1024.0 && u < UNITS.len() - 1 {
            v /= 1024.0;
            u += 1;
        }
        if u == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{v:.2} {}", UNITS[u])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_named_by_at_least_holds_the_bytes() {
        for bytes in (0..2000u64).map(|i| i * i * i * 7919 + i) {
            let spec = Bytes::at_least(bytes);
            let parsed = parse_bytes(&spec).unwrap_or_else(|| panic!("{spec} does not parse"));
            assert!(parsed >= bytes, "{bytes} named as {spec}, which is {parsed}");
        }
    }

    #[test]
    fn a_plain_byte_count_is_whole_and_units_may_be_fractional() {
        assert_eq!(parse_bytes("1536"), Some(1536));
        assert_eq!(parse_bytes("1.5KiB"), Some(1536));
        assert_eq!(parse_bytes("2 MB"), Some(2_000_000));
        assert_eq!(parse_bytes("1.5"), None);
        assert_eq!(parse_bytes("0.5B"), None);
        assert_eq!(parse_bytes("-1GiB"), None);
        assert_eq!(parse_bytes("99999999999999999999999"), None);
        assert_eq!(parse_bytes("0.0001KiB"), None);
        assert_eq!(parse_bytes("0"), Some(0));
    }
}
