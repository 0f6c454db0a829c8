//! `chainrule train`: the main job.

use crate::data_source::{self, Source};
use crate::device;
use crate::metrics::MetricsWriter;
use anyhow::{bail, Context};
use chainrule::data::{Dataset, Normalization};
use chainrule::exec::ExecError;
use chainrule::io::Snapshot;
use chainrule::memory::parse_bytes;
use chainrule::memory::{Bytes, MemoryError};
use chainrule::nn::Mlp;
use chainrule::nn::MlpSpec;
use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::plan::CheckpointPolicy;
use chainrule::scale::{max_batch, resident_bytes};
use chainrule::train::{Control, TrainConfig, TrainError, Trainer};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Folder with the four MNIST IDX files (train-images-idx3-ubyte[.gz] or train-images.idx3-ubyte, and t10k-/test- for the test split) [default: the built-in MNIST subset]
    #[arg(long, value_name = "DIR", conflicts_with = "csv")]
    data: Option<PathBuf>,
    /// CSV file with the integer label in the first column, then the features; a non-numeric first row is a header
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// CSV test split for --csv [default: hold out --test-fraction of --csv]
    #[arg(long, value_name = "FILE", requires = "csv")]
    test_csv: Option<PathBuf>,
    /// Share of --csv rows held out (seeded) for testing when --test-csv is not given
    #[arg(long, default_value_t = 0.2, value_name = "P")]
    test_fraction: f64,
    /// Layer widths, input to classes [default: FEATURES-512-256-CLASSES from the data, 784-512-256-10 for MNIST]
    #[arg(long, value_name = "SPEC")]
    layers: Option<String>,
    /// Activation between layers: relu, leaky_relu, gelu, tanh, sigmoid
    #[arg(long, default_value = "relu")]
    activation: String,
    /// Dropout probability after each hidden activation
    #[arg(long, default_value_t = 0.1, value_name = "P")]
    dropout: f64,
    /// Optimizer: sgd, adam, adamw
    #[arg(long, default_value = "adamw")]
    optimizer: String,
    /// Learning rate [default: 0.001 for adam/adamw, 0.05 for sgd]
    #[arg(long, value_name = "LR")]
    lr: Option<f64>,
    /// Weight decay (decoupled for adamw, L2 for sgd/adam)
    #[arg(long, default_value_t = 0.0001, value_name = "WD")]
    weight_decay: f64,
    /// Momentum for sgd
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Nesterov momentum for sgd
    #[arg(long)]
    nesterov: bool,
    /// Learning-rate schedule: constant, step[:EVERY_EPOCHS[:GAMMA]], cosine[:WARMUP_EPOCHS] (cosine decays to zero at --epochs)
    #[arg(long, default_value = "step:8:0.5", value_name = "SCHEDULE")]
    schedule: String,
    /// Total epochs; with --resume, the run continues until this many are done [default: 30, or the saved run's]
    #[arg(long, value_name = "N")]
    epochs: Option<u64>,
    /// Examples per step (the last batch of an epoch may be smaller)
    #[arg(long, default_value_t = 128, value_name = "B")]
    batch_size: usize,
    /// Seed for initialisation, shuffling and dropout
    #[arg(long, default_value_t = 0, value_name = "S")]
    seed: u64,
    /// Augment image data with random shifts of up to N pixels each way (0: off); not for CSV data
    #[arg(long, default_value_t = 1, value_name = "N")]
    augment_shift: usize,
    /// Standardize each feature to zero mean and unit variance (statistics of the training split)
    #[arg(long)]
    standardize: bool,
    /// Activation checkpointing: none, cheap (recompute activations and bias adds), sqrt (keep ~sqrt(n) layer boundaries, recompute segments), every:K, budget:SIZE (least recompute whose predicted peak fits, e.g. budget:1.5GiB)
    #[arg(long, default_value = "none", value_name = "POLICY")]
    checkpoint: String,
    /// Check the first step's gradients against a step without checkpointing and report the largest difference
    #[arg(long)]
    verify_checkpoint: bool,
    /// Device: auto (the first GPU if usable, else the CPU), cpu, or cuda[:N]
    #[arg(long, default_value = "auto")]
    device: String,
    /// On the CPU, refuse allocations past this size (as a GPU would), e.g. 2GiB [default: no limit]
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    /// Compute dtype: f32, bf16 or f16 (GPU only: matrix products on 16-bit copies with f32 accumulation; f32 master weights and optimizer state; f16 trains with dynamic loss scaling)
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// On a GPU, run f32 matrix products in TF32 on the tensor cores (faster, ~1e-3 relative error)
    #[arg(long)]
    tf32: bool,
    /// Save weights, optimizer and training state here (safetensors) after every epoch and on Ctrl-C; written atomically
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Continue a run saved with --save (its model, optimizer and settings are used)
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Write JSON lines: one per logged step ("kind":"step") and one per epoch ("kind":"epoch")
    #[arg(long, value_name = "FILE")]
    metrics_out: Option<PathBuf>,
    /// Log a step record (and refresh the progress bar's loss) every N steps; on a GPU the loss is read back (a wait for the device) only then and at the end of each epoch
    #[arg(long, default_value_t = 50, value_name = "N")]
    log_every: u64,
}

const DEFAULT_EPOCHS: u64 = 30;

pub fn run(a: TrainArgs) -> anyhow::Result<i32> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if a.log_every == 0 {
        bail!("--log-every must be at least 1");
    }
    if let Some(p) = &a.save {
        check_writable(p)?;
    }
    let resumed = a.resume.as_ref().map(|p| Snapshot::load(p)).transpose()?;
    let seed = resumed.as_ref().map_or(a.seed, |c| c.state.seed);
    let loaded = data_source::load(&Source {
        data: a.data.clone(),
        csv: a.csv.clone(),
        test_csv: a.test_csv.clone(),
        test_fraction: a.test_fraction,
        seed,
    })?;
    let mut device = device::resolve_with(&a.device, a.tf32, &a.dtype, None)?;
    // The host stands in for a device of this size; a GPU has its own.
    if let (Some(limit), None) = (&a.memory_limit, device.free_memory()?) {
        let bytes =
            parse_bytes(limit).with_context(|| format!("--memory-limit '{limit}': expected a size such as 2GiB"))?;
        device = device.with_memory_limit(Some(bytes))?;
    }

    let (mut trainer, train, test) = match resumed {
        Some(ckpt) => {
            let path = a.resume.clone().expect("resumed implies --resume");
            if let Some(l) = &a.layers {
                if *l != ckpt.model.layers_string() {
                    bail!(
                        "--layers {l} differs from the model in {} ({})",
                        path.display(),
                        ckpt.model.layers_string()
                    );
                }
            }
            let epochs = a.epochs.unwrap_or(ckpt.state.epochs);
            if ckpt.state.epoch >= epochs {
                println!(
                    "{} has already trained {} epochs; nothing to do (pass --epochs greater than {})",
                    path.display(),
                    ckpt.state.epoch,
                    ckpt.state.epoch
                );
                return Ok(0);
            }
            let (train, test) = prepare(
                loaded.train,
                loaded.test,
                &ckpt.normalization,
                &ckpt.model,
                &loaded.description,
            )?;
            eprintln!(
                "resuming {} at epoch {} step {} (its model, optimizer and settings are used)",
                path.display(),
                ckpt.state.epoch + u64::from(ckpt.state.batch_in_epoch > 0),
                ckpt.state.step
            );
            let mut t = Trainer::from_snapshot(ckpt, epochs, &device)?;
            t.set_checkpoint(a.checkpoint.parse()?);
            (t, train, test)
        }
        None => {
            let layers = a.layers.clone().unwrap_or_else(|| {
                format!(
                    "{}-512-256-{}",
                    loaded.train.feature_count(),
                    loaded.train.class_count().max(2)
                )
            });
            let spec = MlpSpec::new(&layers, &a.activation, a.dropout)?;
            let kind = OptimizerKind::parse(&a.optimizer)
                .with_context(|| format!("--optimizer '{}': expected sgd, adam or adamw", a.optimizer))?;
            let lr = a.lr.unwrap_or(if kind == OptimizerKind::Sgd { 0.05 } else { 0.001 });
            if !(lr > 0.0 && lr.is_finite()) {
                bail!("--lr {lr}: must be a positive number");
            }
            let mut optimizer = OptimizerConfig::new(kind);
            optimizer.weight_decay = a.weight_decay;
            if kind == OptimizerKind::Sgd {
                optimizer.momentum = a.momentum;
                optimizer.nesterov = a.nesterov;
            }
            let normalization = if a.standardize {
                Normalization::standardized(loaded.raw_scale, &loaded.train.features)
            } else {
                Normalization::scale_only(loaded.raw_scale)
            };
            let (train, test) = prepare(loaded.train, loaded.test, &normalization, &spec, &loaded.description)?;
            let config = TrainConfig {
                epochs: a.epochs.unwrap_or(DEFAULT_EPOCHS),
                batch_size: a.batch_size,
                lr,
                schedule: LrSchedule::parse(&a.schedule)?,
                seed,
                optimizer,
                augment_shift: if train.image_shape.is_some() {
                    a.augment_shift
                } else {
                    0
                },
                checkpoint: a.checkpoint.parse()?,
                // f16 on a GPU turns it on regardless.
                loss_scaling: false,
            };
            (Trainer::new(spec, config, normalization, &device)?, train, test)
        }
    };

    let spec = &trainer.mlp.spec;
    println!(
        "chainrule {} · {} · MLP {} {}{} · {} parameters",
        env!("CARGO_PKG_VERSION"),
        device.banner(),
        spec.layers_string(),
        spec.activation,
        if spec.dropout > 0.0 {
            format!(" dropout {}", spec.dropout)
        } else {
            String::new()
        },
        thousands(spec.parameter_count() as u64)
    );
    println!(
        "data: {} · train {} · test {} · batch {} · {} lr {} · schedule {} · {} epochs",
        loaded.description,
        thousands(train.len() as u64),
        thousands(test.len() as u64),
        trainer.config.batch_size,
        trainer.config.optimizer.kind.name(),
        trainer.config.lr,
        trainer.config.schedule.describe(),
        trainer.config.epochs
    );

    if a.verify_checkpoint {
        let (x, y) = chainrule::data::Batches::shuffled(
            &train,
            trainer.config.batch_size,
            trainer.state.seed,
            trainer.state.epoch,
        )
        .next()
        .context("the training set is empty")?;
        let (diff, param) = trainer.verify_checkpoint(x, y)?;
        match param {
            None => println!(
                "verify-checkpoint: --checkpoint {} gives gradients identical to none on the first step",
                trainer.config.checkpoint
            ),
            Some(p) => println!(
                "verify-checkpoint: largest gradient difference {diff:e} against none, in {p} (--checkpoint {})",
                trainer.config.checkpoint
            ),
        }
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Ctrl-C only raises a flag: the current step finishes, then we save and leave.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    // Both event handlers write metrics and may record a write failure.
    let metrics = RefCell::new(
        a.metrics_out
            .as_ref()
            .map(|p| MetricsWriter::open(p, a.resume.is_some()))
            .transpose()?,
    );
    let mut last_saved: Option<(PathBuf, u64)> = None;
    let write_error: RefCell<Option<anyhow::Error>> = RefCell::new(None);

    let spe = trainer.steps_per_epoch(train.len());
    let bar = ProgressBar::new(spe);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} · loss {msg} · {per_sec} · eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut window_start = Instant::now();
    let mut window_samples = 0usize;
    let save_path = a.save.clone();
    let log_every = a.log_every;
    let epochs = trainer.config.epochs;

    trainer.log_every = log_every;
    let result = trainer.fit(
        &train,
        &test,
        |_, ev| {
            if ev.batch_in_epoch == 1 || bar.position() == 0 {
                bar.reset();
                bar.set_length(ev.batches_per_epoch);
                bar.set_prefix(format!("{}/{}", ev.epoch, epochs));
                bar.set_position(ev.batch_in_epoch - 1);
            }
            bar.inc(1);
            window_samples += ev.batch;
            if ev.step % log_every == 0 {
                let sps = window_samples as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
                if let Some(loss) = ev.loss {
                    bar.set_message(format!("{loss:.4}"));
                }
                if let Some(m) = metrics.borrow_mut().as_mut() {
                    let rec = json!({
                        "kind": "step", "epoch": ev.epoch, "step": ev.step, "loss": ev.loss, "lr": ev.lr,
                        "samples_per_sec": sps, "peak_bytes": ev.memory.peak_total,
                        "predicted_peak_bytes": ev.predicted.peak_total,
                    });
                    if let Err(e) = m.write(&rec) {
                        *write_error.borrow_mut() = Some(e);
                        return Control::Stop;
                    }
                }
                window_start = Instant::now();
                window_samples = 0;
            }
            if interrupted.load(Ordering::SeqCst) {
                Control::Stop
            } else {
                Control::Continue
            }
        },
        |t, s| {
            bar.finish_and_clear();
            let scaling = match &s.loss_scaler {
                Some(l) => format!("  loss scale {} ({} skipped)", l.scale, l.skipped),
                None => String::new(),
            };
            println!(
                "epoch {:>3}/{}  train loss {:.4}  {}  {:>8.0} samples/s  peak {} (predicted {})  {:.1}s{scaling}",
                s.epoch,
                epochs,
                s.train_loss,
                if s.test.examples == 0 {
                    "no test split".to_string()
                } else {
                    format!("test loss {:.4}  test acc {:6.2}%", s.test.loss, s.test.accuracy * 100.0)
                },
                s.samples_per_sec,
                Bytes(s.peak_bytes),
                Bytes(s.predicted_peak_bytes),
                s.seconds
            );
            if let Some(m) = metrics.borrow_mut().as_mut() {
                let rec = json!({
                    "kind": "epoch", "epoch": s.epoch, "step": s.step, "loss": s.train_loss,
                    "train_loss": s.train_loss, "test_loss": (s.test.examples > 0).then_some(s.test.loss), "test_accuracy": (s.test.examples > 0).then_some(s.test.accuracy),
                    "samples_per_sec": s.samples_per_sec, "peak_bytes": s.peak_bytes,
                    "predicted_peak_bytes": s.predicted_peak_bytes, "seconds": s.seconds,
                    "loss_scale": s.loss_scaler.as_ref().map(|l| l.scale),
                    "skipped_steps": s.loss_scaler.as_ref().map(|l| l.skipped),
                });
                if let Err(e) = m.write(&rec) {
                    *write_error.borrow_mut() = Some(e);
                    return Control::Stop;
                }
            }
            if let Some(p) = &save_path {
                if let Err(e) = t.to_snapshot().map_err(anyhow::Error::from).and_then(|c| Ok(c.save(p)?)) {
                    *write_error.borrow_mut() = Some(e);
                    return Control::Stop;
                }
                last_saved = Some((p.clone(), s.epoch));
            }
            Control::Continue
        },
    );
    bar.finish_and_clear();
    if let Some(e) = write_error.into_inner() {
        return Err(e);
    }
    match result {
        Ok(Control::Continue) => {
            match &a.save {
                Some(p) => println!(
                    "saved {} (epoch {}, step {})",
                    p.display(),
                    trainer.state.epoch,
                    trainer.state.step
                ),
                None => println!("done (pass --save FILE to keep the model)"),
            }
            Ok(0)
        }
        Ok(Control::Stop) => {
            let at = format!("epoch {}, step {}", trainer.state.epoch + 1, trainer.state.step);
            match &a.save {
                Some(p) => {
                    trainer.to_snapshot()?.save(p)?;
                    println!(
                        "interrupted at {at}; saved {} (resume with --resume {})",
                        p.display(),
                        p.display()
                    );
                }
                None => println!("interrupted at {at}; nothing saved (no --save given)"),
            }
            Ok(130)
        }
        Err(e @ (TrainError::NonFinite { .. } | TrainError::NonFiniteParameters { .. })) => {
            let kept = match &last_saved {
                Some((p, e)) => format!("the last good model is {} (saved after epoch {e})", p.display()),
                None => match &a.save {
                    Some(p) => format!("{} was not overwritten", p.display()),
                    None => "nothing was saved".to_string(),
                },
            };
            bail!("{e}; stopped there; {kept}. Try a lower --lr.")
        }
        Err(e) => match out_of_memory(&e) {
            Some(limit) => bail!(
                "{e}\n{}",
                oom_advice(
                    &trainer.mlp.spec,
                    &trainer.config.optimizer,
                    trainer.config.batch_size,
                    limit
                )
            ),
            None => Err(e.into()),
        },
    }
}

/// Fails now, not after the first epoch, when `--save` names a place that cannot be written.
fn check_writable(path: &std::path::Path) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!(
            "--save {}: is a folder; name a file such as model.safetensors",
            path.display()
        );
    }
    let probe = path.with_file_name(format!(
        ".{}.probe-{}",
        path.file_name().map_or("save".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    std::fs::write(&probe, b"").with_context(|| format!("--save {}: cannot write in that folder", path.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The device's limit, when `e` is an out-of-memory error.
fn out_of_memory(e: &TrainError) -> Option<u64> {
    let m = match e {
        TrainError::Memory(m) | TrainError::Exec(ExecError::Memory(m)) => m,
        _ => return None,
    };
    let MemoryError::OutOfMemory { limit, .. } = m;
    Some(*limit)
}

/// What `chainrule scale` would pick for this model within `limit`.
fn oom_advice(spec: &MlpSpec, optimizer: &OptimizerConfig, batch: usize, limit: u64) -> String {
    let mlp = match Mlp::new(spec.clone()) {
        Ok(m) => m,
        Err(e) => return e.to_string(),
    };
    let resident = resident_bytes(spec, optimizer);
    let candidates = [
        CheckpointPolicy::None,
        CheckpointPolicy::Cheap,
        CheckpointPolicy::Sqrt,
        CheckpointPolicy::Budget(limit),
    ];
    let fits: Vec<(CheckpointPolicy, usize)> = candidates
        .iter()
        .filter_map(|&p| max_batch(&mlp, p, limit, &resident).map(|b| (p, b)))
        .collect();
    match fits.iter().find(|(_, b)| *b >= batch) {
        Some((p, _)) => format!("suggestion: --checkpoint {p} fits --batch-size {batch} in {} (see `chainrule scale`)", Bytes(limit)),
        None => match fits.iter().max_by_key(|(_, b)| *b) {
            Some((p, b)) => format!("suggestion: --checkpoint {p} --batch-size {b} is the largest batch that fits in {} (see `chainrule scale`)", Bytes(limit)),
            None => format!("even a batch of 1 does not fit in {}: use a smaller model", Bytes(limit)),
        },
    }
}

/// Applies the normalization and checks the model fits the data.
fn prepare(
    mut train: Dataset,
    mut test: Dataset,
    norm: &Normalization,
    spec: &MlpSpec,
    source: &str,
) -> anyhow::Result<(Dataset, Dataset)> {
    if train.feature_count() != spec.inputs() {
        bail!(
            "--layers {}: the first width is {} but the data ({source}) has {} features per example",
            spec.layers_string(),
            spec.inputs(),
            train.feature_count()
        );
    }
    let classes = train.class_count().max(test.class_count());
    if classes != spec.classes() {
        bail!(
            "--layers {}: the last width is {} but the data ({source}) has {classes} classes (labels 0..{})",
            spec.layers_string(),
            spec.classes(),
            classes.saturating_sub(1)
        );
    }
    if let Some(m) = &norm.mean {
        if m.len() != spec.inputs() {
            bail!(
                "the saved normalization has {} features, the data {}",
                m.len(),
                spec.inputs()
            );
        }
    }
    norm.apply(&mut train.features);
    norm.apply(&mut test.features);
    Ok((train, test))
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
