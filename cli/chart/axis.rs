//! A chart axis: what its values are (whole counts, numbers, bytes, a percentage change),
//! whether it is drawn on a log scale, and the round ticks and labels that follow.

use chainrule::memory::Bytes;

/// What an axis measures, which decides its ticks and how they read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    /// Whole things (epochs, layers, examples): whole-number ticks only.
    Count,
    Number,
    /// Bytes, labelled in the binary units the tables print (KiB, MiB, GiB).
    Bytes,
    /// A change in percent, signed (+12%, -3%).
    PercentChange,
}

#[derive(Clone, Debug)]
pub struct Axis {
    pub label: String,
    pub unit: Unit,
    pub log: bool,
    /// The range reaches down to zero (a rate, read against none at all).
    pub from_zero: bool,
    /// Named places instead of numbers: value `i` is `categories[i]` (remat's policies at
    /// one depth).
    pub categories: Option<Vec<String>>,
}

/// Ticks in the chart's own coordinates (log10 of the value on a log axis), each with its label.
#[derive(Debug, PartialEq)]
pub struct Ticks {
    pub at: Vec<f64>,
    pub labels: Vec<String>,
}

/// About this many ticks an axis aims for; never more than `MOST_TICKS`.
const TICKS_WANTED: f64 = 6.0;
const MOST_TICKS: usize = 9;

impl Axis {
    pub fn new(label: &str, unit: Unit, log: bool) -> Self {
        Axis {
            label: label.to_string(),
            unit,
            log,
            from_zero: false,
            categories: None,
        }
    }

    /// An axis of named places, one per name, in order.
    pub fn categorical(label: &str, names: Vec<String>) -> Self {
        Axis {
            categories: Some(names),
            ..Axis::new(label, Unit::Count, false)
        }
    }

    pub fn starting_at_zero(self) -> Self {
        Axis {
            from_zero: true,
            ..self
        }
    }

    /// The label a reader sees: a log axis says so, as its spacing would otherwise mislead.
    pub fn title(&self) -> String {
        if self.log {
            format!("{} (log scale)", self.label)
        } else {
            self.label.clone()
        }
    }

    /// Whether a value can be placed on this axis (a log axis has no place for 0 or less).
    pub fn shows(&self, v: f64) -> bool {
        v.is_finite() && (!self.log || v > 0.0)
    }

    /// A value in the chart's coordinates.
    pub fn to_chart(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    /// The chart range (in chart coordinates) that holds `values` with a margin.
    pub fn range(&self, values: impl IntoIterator<Item = f64>) -> (f64, f64) {
        if let Some(names) = &self.categories {
            return (-0.6, names.len() as f64 - 0.4);
        }
        let zero = (self.from_zero && !self.log).then_some(0.0);
        let (lo, hi) = values
            .into_iter()
            .chain(zero)
            .filter(|&v| self.shows(v))
            .map(|v| self.to_chart(v))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        if lo > hi {
            return (0.0, 1.0);
        }
        // A single value still gets room: half a step on a count axis, a tenth of a decade on a log one.
        let pad = match (hi - lo, self.log, self.unit) {
            (s, true, _) if s < 1e-9 => 0.1,
            (s, false, Unit::Count) if s < 1e-9 => 0.5,
            (s, false, _) if s < 1e-12 => lo.abs().max(1.0) * 0.1,
            (s, _, _) => s * 0.06,
        };
        // Bytes are never negative, nor is what starts at zero: such an axis starts at 0 at the lowest.
        let floor = if (self.unit == Unit::Bytes || self.from_zero) && !self.log {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        ((lo - pad).max(floor.min(lo)), hi + pad)
    }

    /// Round ticks inside `range` (chart coordinates) and their labels.
    pub fn ticks(&self, (lo, hi): (f64, f64)) -> Ticks {
        if let Some(names) = &self.categories {
            return Ticks {
                at: (0..names.len()).map(|i| i as f64).collect(),
                labels: names.clone(),
            };
        }
        let values = if self.log {
            log_ticks(self.unit, 10f64.powf(lo), 10f64.powf(hi))
        } else {
            linear_ticks(self.unit, lo, hi)
        };
        let step = smallest_gap(&values);
        Ticks {
            at: values.iter().map(|&v| self.to_chart(v)).collect(),
            labels: values.iter().map(|&v| label(self.unit, v, step)).collect(),
        }
    }
}

/// Evenly spaced round values (1, 2 or 5 times a power of ten; whole numbers on a count
/// axis; in the largest binary unit that fits on a byte axis) from `lo` to `hi`.
fn linear_ticks(unit: Unit, lo: f64, hi: f64) -> Vec<f64> {
    let scale = match unit {
        Unit::Bytes => binary_unit(lo.abs().max(hi.abs())),
        _ => 1.0,
    };
    let mut step = nice_step((hi - lo) / scale / TICKS_WANTED) * scale;
    if unit == Unit::Count {
        step = step.max(1.0);
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Round values for a log axis from `lo` to `hi`: powers of two for counts and bytes (the
/// sizes people try), with 1.5 times them between when a range holds few; 1..9, 1-2-5 or 1
/// times powers of ten otherwise. The densest set of at most `MOST_TICKS` is taken, at
/// least three ticks where one gives them; a range too narrow for two gets linear ticks.
fn log_ticks(unit: Unit, lo: f64, hi: f64) -> Vec<f64> {
    let within = |v: &f64| *v >= lo && *v <= hi;
    let candidates: Vec<Vec<f64>> = match unit {
        Unit::Count | Unit::Bytes => {
            let exponents = lo.log2().floor() as i32..=hi.log2().ceil() as i32;
            let powers: Vec<f64> = exponents.clone().map(|e| 2f64.powi(e)).filter(within).collect();
            let with_threes = exponents
                .flat_map(|e| [2f64.powi(e), 1.5 * 2f64.powi(e)])
                .filter(|v| within(v) && (unit == Unit::Bytes || v.fract() == 0.0))
                .collect();
            vec![thin_powers_of_two(powers), with_threes]
        }
        Unit::Number | Unit::PercentChange => [
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0][..],
            &[1.0, 2.0, 5.0],
            &[1.0],
        ]
        .iter()
        .map(|mantissas| {
            (lo.log10().floor() as i32..=hi.log10().ceil() as i32)
                .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
                .filter(within)
                .collect()
        })
        .collect(),
    };
    let fits = |least: usize| {
        candidates
            .iter()
            .find(|t| t.len() >= least && t.len() <= MOST_TICKS)
            .cloned()
    };
    fits(3)
        .or_else(|| fits(2))
        .unwrap_or_else(|| linear_ticks(unit, lo, hi).into_iter().filter(|&v| v > 0.0).collect())
}

/// Every k-th power of two, keeping those whose exponent k divides, so 1 KiB, 1 MiB and
/// 1 GiB stay among them when they can.
fn thin_powers_of_two(powers: Vec<f64>) -> Vec<f64> {
    let k = powers.len().div_ceil(MOST_TICKS).max(1) as i32;
    powers
        .into_iter()
        .filter(|p| (p.log2().round() as i32) % k == 0)
        .collect()
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw > 0.0 && raw.is_finite()) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// The largest of 1, KiB, MiB, GiB, TiB that `bytes` reaches: the unit `Bytes` prints it in.
fn binary_unit(bytes: f64) -> f64 {
    let mut unit = 1.0;
    while bytes >= unit * 1024.0 && unit < 1024f64.powi(4) {
        unit *= 1024.0;
    }
    unit
}

fn smallest_gap(values: &[f64]) -> f64 {
    values
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(f64::INFINITY, f64::min)
}

/// A tick's label, with as many decimals as the gap to its neighbours needs.
pub fn label(unit: Unit, v: f64, step: f64) -> String {
    match unit {
        Unit::Bytes => byte_label(v),
        Unit::Count => format!("{}", v.round() as i64),
        Unit::Number => number_label(v, step),
        Unit::PercentChange => {
            let text = number_label(v, step);
            if v > 0.0 {
                format!("+{text}%")
            } else {
                format!("{text}%")
            }
        }
    }
}

/// `Bytes`' own words (the tables' units), without the zero decimals a round tick has.
pub fn byte_label(v: f64) -> String {
    let text = Bytes(v.max(0.0).round() as u64).to_string();
    match text.split_once(' ') {
        Some((number, unit)) if number.contains('.') => {
            format!("{} {unit}", number.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => text,
    }
}

fn number_label(v: f64, step: f64) -> String {
    // Zero is the same in any unit (and -0.0 would print as "-0").
    if v.abs() < 1e-12 * step.abs().max(1.0) {
        return "0".to_string();
    }
    // Past millions, a power of ten (a diverging loss): "3e12", short enough for the margin.
    if step >= 1e6 && step.is_finite() {
        let exponent = step.log10().floor() as i32;
        let mantissa = v / 10f64.powi(exponent);
        return format!("{}e{exponent}", (mantissa * 10.0).round() / 10.0);
    }
    // Thousands as "k" when every tick is a whole number of them.
    let (v, step, suffix) = if step >= 1e3 && step.is_finite() {
        (v / 1e3, step / 1e3, "k")
    } else {
        (v, step, "")
    };
    let decimals = if step.is_finite() && step < 1.0 {
        (-step.log10()).ceil().clamp(0.0, 6.0) as usize
    } else {
        0
    };
    format!("{v:.decimals$}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: &Axis, values: &[f64]) -> Vec<String> {
        axis.ticks(axis.range(values.iter().copied())).labels
    }

    #[test]
    fn an_epoch_axis_gets_only_whole_epochs() {
        let epochs = Axis::new("epoch", Unit::Count, false);
        for last in 1..=40 {
            let values: Vec<f64> = (1..=last).map(f64::from).collect();
            let ticks = epochs.ticks(epochs.range(values.iter().copied()));
            assert!(!ticks.at.is_empty(), "{last} epochs");
            for (at, text) in ticks.at.iter().zip(&ticks.labels) {
                assert_eq!(at.fract(), 0.0, "{last} epochs: tick at {at}");
                assert!(text.parse::<i64>().is_ok(), "{last} epochs: label {text}");
            }
        }
        assert_eq!(labels(&epochs, &[1.0, 2.0, 3.0, 4.0, 5.0]), ["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn a_log_count_axis_ticks_at_powers_of_two() {
        let batch = Axis::new("batch size", Unit::Count, true);
        assert_eq!(batch.title(), "batch size (log scale)");
        let ticks = labels(&batch, &[1.0, 29788.0]);
        assert!(ticks.len() <= MOST_TICKS, "{ticks:?}");
        assert!(
            ticks.iter().all(|t| t.parse::<u64>().is_ok_and(u64::is_power_of_two)),
            "{ticks:?}"
        );
        assert_eq!(
            labels(&Axis::new("depth", Unit::Count, true), &[2.0, 4.0, 8.0]),
            ["2", "4", "8"]
        );
    }

    #[test]
    fn a_byte_axis_labels_in_binary_units() {
        let log = Axis::new("peak", Unit::Bytes, true);
        let ticks = labels(&log, &[3.0 * 1048576.0, 600.0 * 1048576.0]);
        assert!(
            ticks.contains(&"4 MiB".to_string()) && ticks.contains(&"256 MiB".to_string()),
            "{ticks:?}"
        );
        // A narrow range still gets three ticks, halfway steps among them.
        let ticks = labels(&log, &[1.15 * 1048576.0, 4.16 * 1048576.0]);
        assert_eq!(ticks, ["1.5 MiB", "2 MiB", "3 MiB", "4 MiB"]);
        let linear = Axis::new("peak", Unit::Bytes, false);
        let ticks = labels(&linear, &[1.5 * 1073741824.0, 3.0 * 1073741824.0]);
        assert!(ticks.iter().all(|t| t.ends_with(" GiB")), "{ticks:?}");
        for t in labels(&linear, &[0.0, 70.0 * 1048576.0]) {
            assert!(t.ends_with("MiB") || t == "0 B", "{t}");
            assert!(!t.contains('M') || t.contains("MiB"), "never a decimal M: {t}");
        }
    }

    #[test]
    fn a_percent_change_is_signed_and_numbers_keep_the_decimals_their_step_needs() {
        let overhead = Axis::new("overhead", Unit::PercentChange, false);
        let ticks = labels(&overhead, &[-48.0, 30.0]);
        assert!(
            ticks.contains(&"0%".to_string()) && ticks.contains(&"+20%".to_string()),
            "{ticks:?}"
        );
        assert!(ticks.contains(&"-40%".to_string()), "{ticks:?}");
        let rate = Axis::new("samples/s", Unit::Number, false).starting_at_zero();
        assert_eq!(labels(&rate, &[4500.0, 22000.0]), ["0", "5k", "10k", "15k", "20k"]);
        // A diverging loss: powers of ten, not "3000000000000k".
        let loss = Axis::new("loss", Unit::Number, false);
        let huge = labels(&loss, &[0.0, 3e12]);
        assert!(huge.iter().all(|l| l.len() <= 6), "{huge:?}");
        let loss = Axis::new("loss", Unit::Number, false);
        assert!(labels(&loss, &[0.21, 0.29])
            .iter()
            .all(|t| t.starts_with("0.") && t.len() == 4));
    }
}
