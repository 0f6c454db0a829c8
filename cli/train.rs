//! `chainrule train`: the main job.

use crate::data_source::{self, Loaded, Source};
use crate::device;
use crate::paths::{self, Role};
use crate::train_report::{thousands, Reporter};
use anyhow::{bail, Context};
use chainrule::backend::Device;
use chainrule::data::{Dataset, Normalization};
use chainrule::io::{SaveLock, Snapshot};
use chainrule::memory::parse_bytes;
use chainrule::nn::MlpSpec;
use chainrule::optim::{LrSchedule, OptimizerKind};
use chainrule::train::setup::{self, out_of_memory_advice};
use chainrule::train::{Control, TrainConfig, TrainError, Trainer};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    if a.epochs == Some(0) && a.resume.is_none() {
        bail!("--epochs must be at least 1");
    }
    paths::distinct(&[
        ("--save", a.save.as_deref(), Role::Output),
        ("--metrics-out", a.metrics_out.as_deref(), Role::Output),
        ("--resume", a.resume.as_deref(), Role::Input),
        ("--csv", a.csv.as_deref(), Role::Input),
        ("--test-csv", a.test_csv.as_deref(), Role::Input),
        ("--data", a.data.as_deref(), Role::Input),
    ])?;
    // Held until the run ends: a second run saving to the same file is refused.
    let _lock = a.save.as_deref().map(lock_save).transpose()?;
    let resumed = a.resume.as_ref().map(|p| Snapshot::load(p)).transpose()?;
    let seed = resumed.as_ref().map_or(a.seed, |c| c.state.seed);
    let loaded = data_source::load(&Source {
        data: a.data.clone(),
        csv: a.csv.clone(),
        test_csv: a.test_csv.clone(),
        test_fraction: a.test_fraction,
        seed,
    })?;
    let device = open_device(&a)?;
    let description = loaded.description.clone();
    let (mut trainer, train, test) = match resumed {
        Some(snapshot) => match resume(&a, snapshot, loaded, &device)? {
            Some(started) => started,
            None => return Ok(0),
        },
        None => start(&a, loaded, seed, &device)?,
    };
    print_banner(&trainer, &device, &description, &train, &test);
    if a.verify_checkpoint {
        verify_checkpoint(&mut trainer, &train)?;
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Ctrl-C only raises a flag: the current step finishes, then we save and leave.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let mut reporter = Reporter::new(
        &a.metrics_out,
        a.resume.is_some(),
        a.save.clone(),
        a.log_every,
        &trainer,
        &train,
    )?;
    trainer.log_every = a.log_every;
    let result = {
        let reporter = std::cell::RefCell::new(&mut reporter);
        trainer.fit(
            &train,
            &test,
            |_, ev| {
                let go_on = reporter.borrow_mut().step(ev);
                if interrupted.load(Ordering::SeqCst) {
                    Control::Stop
                } else {
                    go_on
                }
            },
            |t, s| reporter.borrow_mut().epoch(t, s),
        )
    };
    reporter.finish()?;
    conclude(&a, &trainer, result, reporter.last_saved())
}

/// `--device`, `--dtype`, `--tf32`; `--memory-limit` makes the host stand in for a device
/// of that size (a GPU has its own).
fn open_device(a: &TrainArgs) -> anyhow::Result<Arc<dyn Device>> {
    let device = device::resolve_with(&a.device, a.tf32, &a.dtype, None)?;
    match (&a.memory_limit, device.free_memory()?) {
        (Some(limit), None) => {
            let bytes = parse_bytes(limit)
                .with_context(|| format!("--memory-limit '{limit}': expected a size such as 2GiB"))?;
            Ok(device.with_memory_limit(Some(bytes))?)
        }
        _ => Ok(device),
    }
}

/// A new run from the flags, with the engine's defaults for what they leave out.
fn start(
    a: &TrainArgs,
    loaded: Loaded,
    seed: u64,
    device: &Arc<dyn Device>,
) -> anyhow::Result<(Trainer, Dataset, Dataset)> {
    let layers = a
        .layers
        .clone()
        .unwrap_or_else(|| setup::default_layers(&loaded.train, &loaded.test));
    let spec = MlpSpec::new(&layers, &a.activation, a.dropout)?;
    let kind = OptimizerKind::parse(&a.optimizer)
        .with_context(|| format!("--optimizer '{}': expected sgd, adam or adamw", a.optimizer))?;
    let lr = setup::check_lr(a.lr.unwrap_or(setup::default_lr(kind)))?;
    let normalization = if a.standardize {
        Normalization::standardized(loaded.raw_scale, &loaded.train.features)
    } else {
        Normalization::scale_only(loaded.raw_scale)
    };
    let (train, test) = setup::prepare(loaded.train, loaded.test, &normalization, &spec, &loaded.description)?;
    let config = TrainConfig {
        epochs: a.epochs.unwrap_or(DEFAULT_EPOCHS),
        batch_size: a.batch_size,
        lr,
        schedule: LrSchedule::parse(&a.schedule)?,
        seed,
        optimizer: setup::optimizer(kind, a.weight_decay, a.momentum, a.nesterov)?,
        augment_shift: setup::check_augment_shift(a.augment_shift, train.image_shape)?,
        checkpoint: a.checkpoint.parse()?,
        // f16 on a GPU turns it on regardless.
        loss_scaling: false,
    };
    Ok((Trainer::new(spec, config, normalization, device)?, train, test))
}

/// A saved run continued with its own model, optimizer and settings; `None` when it has
/// already trained the epochs asked for.
fn resume(
    a: &TrainArgs,
    snapshot: Snapshot,
    loaded: Loaded,
    device: &Arc<dyn Device>,
) -> anyhow::Result<Option<(Trainer, Dataset, Dataset)>> {
    let path = a
        .resume
        .as_ref()
        .expect("resumed implies --resume")
        .display()
        .to_string();
    let Some(epochs) = setup::resumed_epochs(&snapshot, &path, a.layers.as_deref(), a.epochs)? else {
        let done = snapshot.state.epoch;
        println!("{path} has already trained {done} epochs; nothing to do (pass --epochs greater than {done})");
        return Ok(None);
    };
    let (train, test) = setup::prepare(
        loaded.train,
        loaded.test,
        &snapshot.normalization,
        &snapshot.model,
        &loaded.description,
    )?;
    eprintln!(
        "resuming {path} at epoch {} step {} (its model, optimizer and settings are used)",
        setup::resumed_at(&snapshot),
        snapshot.state.step
    );
    let mut t = Trainer::from_snapshot(snapshot, epochs, device)?;
    t.set_checkpoint(a.checkpoint.parse()?);
    Ok(Some((t, train, test)))
}

fn print_banner(trainer: &Trainer, device: &Arc<dyn Device>, description: &str, train: &Dataset, test: &Dataset) {
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
    let c = &trainer.config;
    println!(
        "data: {description} · train {} · test {} · batch {} · {} lr {} · schedule {} · {} epochs",
        thousands(train.len() as u64),
        thousands(test.len() as u64),
        c.batch_size,
        c.optimizer.kind.name(),
        c.lr,
        c.schedule.describe(),
        c.epochs
    );
}

/// `--verify-checkpoint`: the first step's gradients under the policy against none.
fn verify_checkpoint(trainer: &mut Trainer, train: &Dataset) -> anyhow::Result<()> {
    let (x, y) = chainrule::data::Batches::shuffled(
        train,
        trainer.config.batch_size,
        trainer.state.seed,
        trainer.state.epoch,
    )
    .next()
    .context("the training set is empty")?;
    let (diff, param) = trainer.verify_checkpoint(x, y)?;
    let policy = trainer.config.checkpoint;
    match param {
        None => {
            println!("verify-checkpoint: --checkpoint {policy} gives gradients identical to none on the first step")
        }
        Some(p) => println!(
            "verify-checkpoint: largest gradient difference {diff:e} against none, in {p} (--checkpoint {policy})"
        ),
    }
    Ok(())
}

/// The run's last words and exit code: done, interrupted (saved if asked), or failed.
fn conclude(
    a: &TrainArgs,
    trainer: &Trainer,
    result: Result<Control, TrainError>,
    last_saved: Option<&(PathBuf, u64)>,
) -> anyhow::Result<i32> {
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
                Some(p) => match trainer.to_snapshot() {
                    Ok(snapshot) => {
                        snapshot.save(p)?;
                        println!(
                            "interrupted at {at}; saved {} (resume with --resume {})",
                            p.display(),
                            p.display()
                        );
                    }
                    Err(e @ TrainError::NonFiniteParameters { .. }) => {
                        bail!("interrupted at {at}; not saved: {e}; {}", kept(a, last_saved))
                    }
                    Err(e) => return Err(e.into()),
                },
                None => println!("interrupted at {at}; nothing saved (no --save given)"),
            }
            Ok(130)
        }
        Err(TrainError::Evaluation { epoch, cause }) => {
            let cause = *cause;
            let saved = match &a.save {
                Some(p) => {
                    trainer.to_snapshot()?.save(p)?;
                    format!("saved it to {} (resume with --resume {})", p.display(), p.display())
                }
                None => "nothing was saved (no --save given)".to_string(),
            };
            let advice = cause
                .out_of_memory_limit()
                .map(|limit| format!("\n{}", out_of_memory_advice(&trainer.mlp.spec, &trainer.config, limit)))
                .unwrap_or_default();
            bail!("epoch {epoch} was trained and {saved}, but evaluating it failed: {cause}{advice}")
        }
        Err(e @ (TrainError::NonFinite { .. } | TrainError::NonFiniteParameters { .. })) => {
            bail!("{e}; stopped there; {}. Try a lower --lr.", kept(a, last_saved))
        }
        Err(e) => match e.out_of_memory_limit() {
            Some(limit) => bail!(
                "{e}\n{}",
                out_of_memory_advice(&trainer.mlp.spec, &trainer.config, limit)
            ),
            None => Err(e.into()),
        },
    }
}

/// What is left of the run on disk after a failure.
fn kept(a: &TrainArgs, last_saved: Option<&(PathBuf, u64)>) -> String {
    match last_saved {
        Some((p, e)) => format!("the last good model is {} (saved after epoch {e})", p.display()),
        None => match &a.save {
            Some(p) => format!("{} was not overwritten", p.display()),
            None => "nothing was saved".to_string(),
        },
    }
}

/// Fails now, not after the first epoch, when `--save` names a place that cannot be
/// written (or another run is saving there); the lock file's creation proves the folder
/// writable.
fn lock_save(path: &Path) -> anyhow::Result<SaveLock> {
    SaveLock::acquire(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::WouldBlock => anyhow::anyhow!("--save {e}"),
        _ => anyhow::Error::new(e).context(format!("--save {}: cannot write in that folder", path.display())),
    })
}
