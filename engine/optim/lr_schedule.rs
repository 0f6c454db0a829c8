//! Learning rate as a function of the step: constant, step decay, or cosine with linear warm-up.

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub enum LrSchedule {
    Constant,
    /// Multiply by `gamma` every `every_epochs` epochs.
    Step {
        every_epochs: usize,
        gamma: f64,
    },
    /// Linear warm-up over `warmup_epochs`, then cosine decay to zero at the run's last step.
    Cosine {
        warmup_epochs: usize,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("--schedule '{spec}': {why}")]
pub struct ScheduleError {
    spec: String,
    why: String,
}

impl LrSchedule {
    /// Parses `constant`, `step[:EVERY[:GAMMA]]` or `cosine[:WARMUP_EPOCHS]`.
    pub fn parse(spec: &str) -> Result<Self, ScheduleError> {
        let err = |why: &str| ScheduleError {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let mut parts = spec.split(':');
        let kind = parts.next().unwrap_or("");
        let rest: Vec<&str> = parts.collect();
        match kind {
            "constant" if rest.is_empty() => Ok(LrSchedule::Constant),
            "step" if rest.len() <= 2 => {
                let every_epochs = rest
                    .first()
                    .map_or(Ok(5), |s| s.parse())
                    .map_err(|_| err("EVERY must be a whole number of epochs"))?;
                let gamma = rest
                    .get(1)
                    .map_or(Ok(0.1), |s| s.parse())
                    .map_err(|_| err("GAMMA must be a number"))?;
                let schedule = LrSchedule::Step { every_epochs, gamma };
                schedule.check().map_err(|why| err(&why))?;
                Ok(schedule)
            }
            "cosine" if rest.len() <= 1 => {
                let warmup_epochs = rest
                    .first()
                    .map_or(Ok(0), |s| s.parse())
                    .map_err(|_| err("WARMUP must be a whole number of epochs"))?;
                Ok(LrSchedule::Cosine { warmup_epochs })
            }
            _ => Err(err("expected constant, step[:EVERY[:GAMMA]] or cosine[:WARMUP_EPOCHS]")),
        }
    }

    /// Why this schedule cannot run (a step schedule's EVERY must be a whole number of
    /// epochs, its GAMMA a factor in (0, 1]), if it cannot: parsed or loaded from a file.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            LrSchedule::Step { every_epochs, gamma } if every_epochs == 0 || !(gamma > 0.0 && gamma <= 1.0) => {
                Err("needs EVERY >= 1 and 0 < GAMMA <= 1".into())
            }
            _ => Ok(()),
        }
    }

    /// The rate for 0-based `step`, given the run's length.
    pub fn lr(&self, base: f64, step: u64, steps_per_epoch: u64, total_steps: u64) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every_epochs, gamma } => {
                let epoch = step / steps_per_epoch.max(1);
                base * gamma.powi((epoch / every_epochs as u64) as i32)
            }
            LrSchedule::Cosine { warmup_epochs } => {
                let warmup = warmup_epochs as u64 * steps_per_epoch;
                if step < warmup {
                    return base * (step + 1) as f64 / warmup as f64;
                }
                let span = total_steps.saturating_sub(warmup).max(1) as f64;
                let t = ((step - warmup) as f64 / span).min(1.0);
                base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            LrSchedule::Constant => "constant".into(),
            LrSchedule::Step { every_epochs, gamma } => format!("step:{every_epochs}:{gamma}"),
            LrSchedule::Cosine { warmup_epochs } => format!("cosine:{warmup_epochs}"),
        }
    }
}
