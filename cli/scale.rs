//! `chainrule scale`: the largest batch (or deepest net) each checkpoint policy fits in a
//! memory limit, found from the planner's prediction, confirmed by a real step under an
//! enforced limit, with throughput at powers of two up to it.

use crate::configuration::Configuration;
use crate::device;
use crate::model_flags::{StepSettings, SYNTHETIC_CLASSES, SYNTHETIC_FEATURES};
use crate::scale_report::{print_table, write_outputs, Sweep, SweepPoint, OUTPUTS};
use crate::timing::Timings;
use crate::voice::Voice;
use anyhow::{bail, Context};
use chainrule::backend::Device;
use chainrule::data::Normalization;
use chainrule::memory::parse_bytes;
use chainrule::memory::Bytes;
use chainrule::nn::{Mlp, MlpSpec, SpecError};
use chainrule::plan::{chosen_name, CheckpointPolicy, Plan};
use chainrule::rng::{stream, KeyedRng};
use chainrule::scale::{fits_at, max_batch, max_depth, plan_at, plan_refusal, predicted_peak, resident_bytes_for};
use chainrule::train::{StepOptions, Trainer};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::sync::Arc;

pub use crate::scale_args::{ScaleArgs, Vary};

/// Runs `steps` training steps at `batch` under `limit`: (samples/s, measured peak).
fn measure(
    device: &Arc<dyn Device>,
    spec: &MlpSpec,
    (step, policy): (&StepSettings, CheckpointPolicy),
    batch: usize,
    limit: u64,
    steps: usize,
) -> anyhow::Result<(f64, u64)> {
    let config = step.config(batch, policy);
    let mut t = Trainer::new(
        spec.clone(),
        config,
        Normalization::scale_only(1.0),
        // The CPU's stand-in for a full GPU: a tracker that refuses past the limit.
        &device.with_memory_limit(Some(limit))?,
    )?;
    let mut rng = KeyedRng::new(5, stream::TEST_DATA);
    let (x, y) = crate::synthetic::batch(&mut rng, batch, spec.inputs(), spec.classes())?;
    // One untimed step first (none when only one is asked for).
    let mut times = Timings::after_warmup(usize::from(steps > 0));
    let mut peak = 0;
    for _ in 0..=steps {
        let (_, m, _) = times.time(|| Ok(t.train_step(x.clone(), y.clone(), step.lr)?))?;
        peak = peak.max(m.peak_total);
    }
    Ok((batch as f64 / times.median(), peak))
}

/// The ranks of the job searched for (`--ranks`, or one per GPU of `--devices`), and the
/// `--device` the search runs on (the first GPU of `--devices`).
fn ranks_and_device(a: &ScaleArgs) -> anyhow::Result<(usize, String)> {
    let Some(list) = &a.devices else {
        return Ok((a.ranks.unwrap_or(1), a.device.clone()));
    };
    let gpus = device::listed_gpus(list, &a.device, "; on a machine without the job's GPUs give --ranks N")?;
    Ok((gpus.len(), format!("cuda:{}", gpus[0])))
}

/// The model searched: the one the model flags give (`--vary batch`), or, to stand for the
/// nets of `--width` `--vary depth` searches, one hidden layer of it.
fn searched_model(a: &ScaleArgs) -> anyhow::Result<MlpSpec> {
    match a.vary {
        Vary::Batch => a.model.synthetic_spec(),
        Vary::Depth => {
            if a.model.layers.is_some() || !a.model.depth.is_empty() || a.model.width.is_none() {
                bail!("--vary depth searches the depth (hidden layers) of a net of --width-wide layers: give --width alone, not --layers or --depth");
            }
            a.model.spec_at_depth(1, SYNTHETIC_FEATURES, SYNTHETIC_CLASSES)
        }
    }
}

/// `--memory-limit`, or a GPU's free memory; each maximum is confirmed by a real step under
/// it, so it must be memory there is.
fn memory_limit(a: &ScaleArgs, device: &Arc<dyn Device>) -> anyhow::Result<u64> {
    let limit = match (&a.memory_limit, device.free_memory()?) {
        (Some(s), _) => {
            parse_bytes(s).with_context(|| format!("--memory-limit '{s}': expected a size such as 1GiB or 800MB"))?
        }
        (None, Some(free)) => free,
        (None, None) => bail!("--memory-limit is required on the CPU (for example --memory-limit 1GiB)"),
    };
    if let Some(room) = device.room()?.filter(|_| !a.predict_only) {
        if limit > room {
            bail!(
                "--memory-limit {}: more than this machine has available ({}); the confirming steps would allocate it",
                Bytes(limit),
                Bytes(room)
            );
        }
    }
    Ok(limit)
}

/// `max` over the `none` policy's maximum (which is recorded when `policy` is none);
/// `None` while `none` has not been measured.
fn ratio_to_none(none_max: &mut Option<usize>, policy: CheckpointPolicy, max: usize) -> Option<f64> {
    match *none_max {
        None if policy == CheckpointPolicy::None => {
            *none_max = Some(max);
            Some(1.0)
        }
        Some(n) => Some(max as f64 / n as f64),
        None => None,
    }
}

pub fn run(a: ScaleArgs) -> anyhow::Result<i32> {
    let step = StepSettings::from_flags(&a.step)?;
    let (ranks, device_flag) = ranks_and_device(&a)?;
    for (flag, value) in [
        ("--batch-size", a.step.batch_size),
        ("--ranks", ranks),
        ("--sweep-from", a.sweep_from),
    ] {
        if value == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    if ranks > 65_536 {
        bail!("{ranks} ranks (--devices, --ranks): a job has 1 to 65536");
    }
    if ranks > 1 && a.vary == Vary::Depth {
        bail!("{ranks} ranks (--devices, --ranks) go with --vary batch: a job's ranks share the batch, not the depth");
    }
    if !(a.max_recompute >= 1.0 && a.max_recompute.is_finite()) {
        bail!(
            "--max-recompute {}: a finite factor of at least 1 (1: no recomputation)",
            a.max_recompute
        );
    }
    let spec = searched_model(&a)?;
    let device = device::resolve_with(&device_flag, false, a.step.dtype(), None, Voice::Speaks)?;
    let limit = memory_limit(&a, &device)?;
    crate::lists::each_once("--policies", &a.policies)?;
    let policies: Vec<(String, CheckpointPolicy)> = a
        .policies
        .iter()
        .map(|p| {
            let policy = if p == "budget" {
                CheckpointPolicy::Budget(limit)
            } else {
                p.parse().map_err(|e| anyhow::anyhow!("--policies {e}"))?
            };
            Ok((p.clone(), policy))
        })
        .collect::<anyhow::Result<_>>()?;
    crate::paths::check_out_folder(&a.out, &OUTPUTS)?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("scale {spinner} {msg} [{elapsed}]").expect("valid"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));

    let mut table = Vec::new();
    let mut series = Vec::new();
    let mut none_max = None;
    let run = Run {
        a: &a,
        ranks,
        step: &step,
        device: &device,
        bar: &bar,
        limit,
        options: StepOptions {
            layout: device.half_layout(),
            update_in_backward: step.update_in_backward,
            rates: device.rates(),
            ..Default::default()
        },
    };
    for (name, policy) in &policies {
        bar.set_message(format!("{name}: planning"));
        let found = match a.vary {
            Vary::Batch => run.largest_batch(&spec, name, *policy)?.map(|(row, s)| {
                series.push(s);
                row
            }),
            Vary::Depth => run.largest_depth(name, *policy)?,
        };
        if let Some((mut row, max)) = found {
            row["ratio_to_none"] = json!(ratio_to_none(&mut none_max, *policy, max));
            table.push(row);
        }
    }
    bar.finish_and_clear();
    if table.is_empty() {
        bail!(
            "nothing fits in {}: no policy fits even a batch of {} (or one layer), or none could be planned (see above); raise --memory-limit (or a policy's budget:SIZE below it), or shrink the model",
            Bytes(limit),
            spec.smallest_training_batch()
        );
    }
    let configuration = Configuration::measured(&spec, &a.step, &step, a.policies.join(","));
    for row in table.iter_mut() {
        *row = configuration.json_with(row.take());
    }
    let header = match a.vary {
        Vary::Batch => configuration.line(),
        Vary::Depth => configuration.line_with_model(&spec.describe_depths("at the depth searched")),
    };
    print_table(
        (&a, ranks),
        &header,
        &table,
        limit,
        format!("{} · {}", device.describe(), device.precision()),
    );
    write_outputs(&a, &table, &series)?;
    Ok(0)
}

/// What every policy's search shares.
struct Run<'a> {
    a: &'a ScaleArgs,
    /// Ranks of the job the search is for (each at its share of the global batch).
    ranks: usize,
    step: &'a StepSettings,
    device: &'a Arc<dyn Device>,
    bar: &'a ProgressBar,
    limit: u64,
    /// How a step runs: the device's 16-bit layout (`--dtype`), updates inside backward.
    options: StepOptions,
}

impl Run<'_> {
    /// The largest batch `policy` fits (its table row and the maximum), confirmed by a step
    /// under the limit, and its sweep of batch sizes; `None` when not even a batch of 1 fits.
    fn largest_batch(
        &self,
        spec: &MlpSpec,
        name: &str,
        policy: CheckpointPolicy,
    ) -> anyhow::Result<Option<((serde_json::Value, usize), Sweep)>> {
        let (a, limit, options) = (self.a, self.limit, self.options);
        let mlp = Mlp::new(spec.clone())?;
        let resident = resident_bytes_for(spec, &self.step.optimizer, options.layout);
        let least = mlp.smallest_training_batch();
        let Some(max) = max_batch(&mlp, policy, limit, &resident, options, a.max_recompute) else {
            self.bar
                .suspend(|| match plan_refusal(&mlp, least, policy, &resident, options) {
                    Some(why) => eprintln!("{name}: {why}"),
                    None => match policy {
                        // The budget, not the limit, is what nothing fits.
                        CheckpointPolicy::Budget(b) if b < limit => eprintln!(
                            "{name}: not even a batch of {least} fits in its budget of {} (under --memory-limit {}); give a larger budget",
                            Bytes(b),
                            Bytes(limit)
                        ),
                        _ => eprintln!("{name}: not even a batch of {least} fits in {}", Bytes(limit)),
                    },
                });
            return Ok(None);
        };
        let next_fits = fits_at(&mlp, max + 1, policy, limit, &resident, options, a.max_recompute);
        let plan = plan_at(&mlp, max, policy, &resident, options);
        let predicted = plan.as_ref().map_or(0, |p| p.predicted.peak_total);
        self.bar.set_message(format!("{name}: confirming batch {max}"));
        // Measured: samples/s and the peak along a sweep of batch sizes. Predicted only: the peak.
        let at = |b: usize| -> anyhow::Result<SweepPoint> {
            Ok(if a.predict_only {
                let peak = predicted_peak(&mlp, b, policy, &resident, options).unwrap_or(0);
                SweepPoint::predicted(b, peak)
            } else {
                self.bar.set_message(format!("{name}: throughput at batch {b}"));
                let (sps, peak) = measure(self.device, spec, (self.step, policy), b, limit, a.steps)?;
                SweepPoint::measured(b, sps, peak)
            })
        };
        let (sps_max, measured) = if a.predict_only {
            (None, None)
        } else {
            self.bar.set_message(format!("{name}: confirming batch {max}"));
            let (sps, peak) = measure(self.device, spec, (self.step, policy), max, limit, a.steps)?;
            (Some(sps), Some(peak))
        };
        let mut points = Vec::new();
        let mut b = a.sweep_from.max(least);
        while b < max {
            // In an fp8 step a batch below the largest may not fit: a multiple of 16 makes
            // FP8 copies that the largest batch, when it is not one, does not.
            if fits_at(&mlp, b, policy, limit, &resident, options, a.max_recompute) {
                points.push(at(b)?);
            } else {
                self.bar.suspend(|| {
                    eprintln!(
                        "{name}: batch {b} left out of the sweep: it does not fit (its FP8 copies), though {max} does"
                    )
                });
            }
            b *= 2;
        }
        points.push(match (sps_max, measured) {
            (Some(sps), Some(peak)) => SweepPoint::measured(max, sps, peak),
            _ => at(max)?,
        });
        let row = json!({"policy": name, "vary": "batch", "max_batch": max, "batch_size": max, "measured_peak_bytes": measured,
            "ranks": self.ranks, "max_global_batch": max.saturating_mul(self.ranks),
            "predicted_peak_bytes": predicted, "limit_bytes": limit, "within_limit": measured.unwrap_or(predicted) <= limit,
            "next_size_predicted_to_fit": next_fits, "samples_per_sec_at_max": sps_max,
            "plan": plan.as_ref().map(chosen_name), "recompute_factor": plan.as_ref().map(Plan::recompute_factor),
            "throughput": (!a.predict_only).then(|| points.iter().map(|p| json!({"batch": p.batch, "samples_per_sec": p.samples_per_sec})).collect::<Vec<_>>())});
        let sweep = Sweep {
            policy: name.to_string(),
            max_batch: max,
            points,
        };
        Ok(Some(((row, max), sweep)))
    }

    /// The deepest net `policy` fits at `--batch-size` (its table row and the maximum),
    /// confirmed by a step under the limit; `None` when not even one layer fits.
    fn largest_depth(
        &self,
        name: &str,
        policy: CheckpointPolicy,
    ) -> anyhow::Result<Option<(serde_json::Value, usize)>> {
        let (a, limit, options) = (self.a, self.limit, self.options);
        a.model.width.context("--vary depth needs --width")?;
        let (most, counted) = a.model.max_depth();
        let at_depth = |d: usize| {
            if d > most {
                // The search stops where --depth does (see MAX_DEPTH and MAX_BLOCKS).
                return Err(SpecError::Layers {
                    spec: format!("{d} {counted}"),
                    why: format!("at most {most}"),
                });
            }
            a.model
                .spec_at_depth(d, SYNTHETIC_FEATURES, SYNTHETIC_CLASSES)
                .map_err(|e| SpecError::Layers {
                    spec: format!("{d} {counted}"),
                    why: e.to_string(),
                })
        };
        let batch = a.step.batch_for(&at_depth(1)?)?;
        let Some(max) = max_depth(
            &at_depth,
            batch,
            policy,
            limit,
            &self.step.optimizer,
            options,
            a.max_recompute,
        ) else {
            self.bar.suspend(|| {
                eprintln!(
                    "{name}: not even one {} fits in {}",
                    &counted[..counted.len() - 1],
                    Bytes(limit)
                )
            });
            return Ok(None);
        };
        let deep = at_depth(max)?;
        self.bar.set_message(format!("{name}: confirming depth {max}"));
        let resident = resident_bytes_for(&deep, &self.step.optimizer, options.layout);
        let plan = plan_at(&Mlp::new(deep.clone())?, batch, policy, &resident, options);
        let predicted = plan.as_ref().map_or(0, |p| p.predicted.peak_total);
        let (sps, measured) = if a.predict_only {
            (None, None)
        } else {
            let (sps, peak) = measure(self.device, &deep, (self.step, policy), batch, limit, a.steps)?;
            (Some(sps), Some(peak))
        };
        // None: the search stopped at its limit, not at memory.
        let next_fits = match max == most {
            true => {
                self.bar
                    .suspend(|| eprintln!("{name}: {most} {counted} fit, the most the search (and --depth) goes to"));
                None
            }
            false => Some(self.next_depth_fits(&at_depth, max, policy)?),
        };
        let row = json!({"policy": name, "vary": "depth", "max_depth": max, "depth": max, "layers": deep.layers_string(), "measured_peak_bytes": measured,
            "predicted_peak_bytes": predicted, "limit_bytes": limit, "within_limit": measured.unwrap_or(predicted) <= limit,
            "next_size_predicted_to_fit": next_fits, "plan": plan.as_ref().map(chosen_name),
            "recompute_factor": plan.as_ref().map(Plan::recompute_factor), "samples_per_sec_at_max": sps, "parameters": deep.parameter_count()});
        Ok(Some((row, max)))
    }

    /// Whether a net one hidden layer deeper than `max` fits too (the search says it does
    /// not, unless something other than memory stopped it, which this says).
    fn next_depth_fits(
        &self,
        at_depth: &dyn Fn(usize) -> Result<MlpSpec, SpecError>,
        max: usize,
        policy: CheckpointPolicy,
    ) -> anyhow::Result<bool> {
        let (a, options, batch) = (self.a, self.options, self.a.step.batch_size);
        let next = at_depth(max + 1)?;
        let next_resident = resident_bytes_for(&next, &self.step.optimizer, options.layout);
        let next = Mlp::new(next)?;
        let fits = fits_at(
            &next,
            batch,
            policy,
            self.limit,
            &next_resident,
            options,
            a.max_recompute,
        );
        if let Some(why) = plan_refusal(&next, batch, policy, &next_resident, options) {
            self.bar
                .suspend(|| eprintln!("{name}: depth {} is not planned: {why}", max + 1, name = policy));
        }
        Ok(fits)
    }
}
