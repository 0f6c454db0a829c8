//! `--cuda-graph`: whether a GPU trains by replaying one captured step. After a warm-up
//! step, the next step of the same shape is captured (forward, backward, the updates and
//! the step guard) as a CUDA graph and every later one replays it: one launch a step
//! instead of one per kernel. Devices without graphs (the CPU) train eagerly.

use std::fmt;
use std::str::FromStr;

/// What a placed model is asked to do with step graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StepGraphs {
    /// Capture when the step can be captured; otherwise say why once and run eagerly.
    Auto,
    /// Capture, or fail the run with the reason.
    On,
    /// Never capture.
    #[default]
    Off,
}

impl FromStr for StepGraphs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(StepGraphs::Auto),
            "on" => Ok(StepGraphs::On),
            "off" => Ok(StepGraphs::Off),
            other => Err(format!("'{other}' is not auto, on or off")),
        }
    }
}

impl fmt::Display for StepGraphs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepGraphs::Auto => "auto",
            StepGraphs::On => "on",
            StepGraphs::Off => "off",
        })
    }
}

/// What became of step graphs on a model that has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraphStatus {
    /// Not asked for.
    Off,
    /// Asked for; no step captured yet (the first step of a shape warms it up).
    Waiting,
    /// A step of `rows` rows was captured; `replays` steps have replayed it since.
    Replaying { rows: usize, replays: u64 },
    /// Steps run eagerly, for this reason (said once).
    Eager(String),
}

impl fmt::Display for GraphStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphStatus::Off => f.write_str("off"),
            GraphStatus::Waiting => f.write_str("not captured yet"),
            GraphStatus::Replaying { rows, replays } => {
                write!(f, "on: a {rows}-row step captured, replayed {replays} times")
            }
            GraphStatus::Eager(why) => write!(f, "off, running eagerly: {why}"),
        }
    }
}
