//! `chainrule train`: the main job.

use crate::configuration::Configuration;
use crate::data_source::{self, Loaded, Source};
use crate::device;
use crate::rank::{self, Place, Placement};
use crate::stop_signals::StopSignals;
use crate::train_report::{counted, thousands, Reporter, Saves};
use crate::voice::Voice;
use anyhow::{bail, Context};
use chainrule::backend::Device;
use chainrule::data::{DataRecord, Dataset, Normalization};
use chainrule::dist::{Job, LauncherEnv};
use chainrule::io::{SaveLock, Snapshot, TrainSettings};
use chainrule::memory::parse_bytes;
use chainrule::nn::{LossKind, MlpSpec};
use chainrule::optim::LrSchedule;
use chainrule::train::run_spec::TypedModel;
use chainrule::train::setup;
use chainrule::train::{run_data, Control, GoingOn, RunSpec, StopTogether, TrainConfig, Trainer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::train_args::TrainArgs;

const DEFAULT_EPOCHS: u64 = 30;

pub fn run(a: TrainArgs) -> anyhow::Result<i32> {
    let a = auto_resume(a)?;
    let var = |name: &str| std::env::var(name).ok();
    let env = LauncherEnv::new(&var);
    let job = rank::read_job(&a, &env)?;
    let rank = job.as_ref().map(|j| j.rank);
    run_as(&a, job, &env).map_err(|e| match rank {
        Some(r) => e.context(format!("rank {r}")),
        None => e,
    })
}

/// `--resume auto`: the `--save` file when it is there (a requeued job goes on from where it
/// stopped), else a new run, so one job script serves the first start and every requeue. A
/// file named `auto` is `--resume ./auto`.
fn auto_resume(mut a: TrainArgs) -> anyhow::Result<TrainArgs> {
    if a.resume.as_deref() != Some(std::path::Path::new("auto")) {
        return Ok(a);
    }
    let Some(save) = &a.save else {
        bail!("--resume auto goes on from the run --save writes: give --save FILE (or --resume FILE for another file)");
    };
    // Anything at that path but a regular file is left to --save's own checks to refuse.
    let saved = std::fs::metadata(save).is_ok_and(|m| m.is_file());
    a.resume = saved.then(|| save.clone());
    a.fresh_by_auto_resume = !saved;
    Ok(a)
}

/// The run, alone, as the launcher of ranks (`--devices` with several GPUs), or as one rank.
fn run_as(a: &TrainArgs, job: Option<Job>, env: &LauncherEnv) -> anyhow::Result<i32> {
    a.check(job.as_ref().is_none_or(|j| j.rank == 0))?;
    let place = match rank::place(a, job, env)? {
        Place::Launcher(code) => return Ok(code),
        Place::Trains(place) => place,
    };
    // From here on a stop signal (Ctrl-C, SIGTERM, SIGHUP, SIGUSR1) only raises a flag: one
    // that comes while the data load or the rendezvous runs stops the run before its first
    // step, one during training after the step it interrupts.
    let signals = crate::stop_signals::StopSignals::install();
    if a.fresh_by_auto_resume {
        let save = a.save.as_ref().expect("--resume auto needs --save").display();
        place
            .voice
            .note(&format!("--resume auto: {save} is not there yet; starting a new run"));
    }
    let saves = Saves::of(a, place.voice);
    // Held until the run ends: a second run writing the same file is refused.
    let _locks = lock_outputs(&saves)?;
    let resumed = a
        .resume
        .as_ref()
        .map(|p| Snapshot::load(p))
        .transpose()
        .context("--resume")?;
    let seed = resumed.as_ref().map_or(a.seed, |c| c.settings.seed);
    let file = a.resume.as_ref().map(|p| p.display().to_string());
    let learning = crate::regression_flags::learning(a, resumed.as_ref().zip(file.as_deref()))?;
    let loaded = data_source::load(&Source {
        data: a.data.clone(),
        csv: a.csv.clone(),
        test_csv: a.test_csv.clone(),
        test_fraction: crate::resume_flags::test_fraction(a, resumed.as_ref()),
        seed,
        targets: learning.targets.as_ref().map(|(_, columns)| columns.clone()),
    })?;
    let dtype = chainrule::train::run_spec::dtype_of_run(a.step.dtype.as_deref(), resumed.as_ref());
    if let (None, Some(path)) = (&a.step.dtype, &a.resume) {
        if chainrule::backend::Precision::parse(&dtype).is_none() {
            bail!(
                "--resume {}: the file's dtype '{dtype}' is not {}; give --dtype",
                path.display(),
                chainrule::backend::Precision::NAMES
            );
        }
    }
    let device = open_device(a, &place, &dtype)?;
    let (description, origin) = (loaded.description.clone(), loaded.origin.clone());
    let (run, train, test) = match resumed {
        Some(snapshot) => match resume(a, snapshot, loaded, &device, place.voice)? {
            Some(going_on) => going_on,
            None => return Ok(0),
        },
        None => start(a, loaded, seed, learning.loss)?,
    };
    let mut trainer = run.trainer(&device)?;
    trainer.set_step_graphs(a.cuda_graph)?;
    trainer.log_every = a.log_every;
    let group = match &place.job {
        Some(job) => Some(trainer.join_job(job, place.wait)?),
        None => None,
    };
    let v = trainer.config.settings.validation;
    if (a.early_stop.is_some() || a.save_best.is_some()) && v.fraction == 0.0 {
        bail!("--early-stop and --save-best watch the validation loss: give --val-fraction too (for example --val-fraction 0.1)");
    }
    let (train, validation) = run_data::hold_out_validation(train, v.fraction, trainer.config.settings.seed)?;
    let data = Data {
        train,
        validation,
        test,
    };
    // The data this run trains on, as its saves record it (a resumed run's too: it may go
    // on with other data), with the classes of the rows it trains on.
    let columns = learning.targets.map(|(text, _)| text);
    let record = DataRecord::new(origin, &data.train, trainer.mlp.spec.classes(), columns);
    trainer.state.data = Some(record);
    if let Some(group) = &group {
        crate::agreement::same_start(group, &trainer, &data.every_set(), a)?;
    }
    print_banner(&trainer, &device, &description, &data);
    crate::classes::report(&trainer, &data.train, place.voice);
    if let Some(job) = &place.job {
        println!("{}", rank::banner(job, trainer.config.settings.batch_size));
    }
    if device.precision() == chainrule::backend::Precision::Fp8 {
        println!(
            "{}",
            crate::fp8_coverage::for_run(&trainer, place.job.as_ref().map_or(1, |j| j.world), data.train.len())
        );
    }
    if a.verify_checkpoint {
        crate::verify_checkpoint::run(&mut trainer, &data.train)?;
    }
    let mut reporter = Reporter::new(
        saves,
        a.resume.is_some(),
        a.log_every,
        &trainer,
        &data.train,
        place.voice,
    )?;
    let dtype = device.precision().to_string();
    reporter.record_configuration(&Configuration::of_run(&trainer, &dtype), trainer.state.data.as_ref());
    let kill_after = place.job.as_ref().and_then(|j| j.kill_after);
    let stop = StopTogether::new(group);
    fit(&mut trainer, &data, (reporter, stop, &signals), kill_after)
}

/// A run's examples, split.
struct Data {
    train: Dataset,
    validation: Option<Dataset>,
    test: Dataset,
}

impl Data {
    /// Training, validation (if held out) and test examples, in that order.
    fn every_set(&self) -> Vec<&Dataset> {
        [Some(&self.train), self.validation.as_ref(), Some(&self.test)]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Trains `trainer` to the end, reporting each step and epoch; the run's exit code. A rank
/// named by the kill hook dies after its step (the test of a lost rank).
fn fit(
    trainer: &mut Trainer,
    data: &Data,
    (mut reporter, stop, signals): (Reporter, StopTogether, &StopSignals),
    kill_after: Option<u64>,
) -> anyhow::Result<i32> {
    if let Some(signal) = signals.received() {
        let at = match a_run_begun(trainer) {
            true => "the saved run is as it was",
            false => "nothing was trained",
        };
        println!("interrupted by {signal} before the first step; {at}");
        return Ok(crate::stop_signals::STOPPED);
    }
    let result = {
        let reporter = std::cell::RefCell::new(&mut reporter);
        trainer.fit_validated(
            &data.train,
            data.validation.as_ref(),
            &data.test,
            |_, ev| {
                let go_on = reporter.borrow_mut().step(ev);
                if kill_after == Some(ev.step) {
                    rank::die();
                }
                match stop.after_step(signals.received().is_some(), ev.loss.is_some()) {
                    true => Control::Stop,
                    false => go_on,
                }
            },
            |t, s| reporter.borrow_mut().epoch(t, s),
        )
    };
    let result = stop.outcome(result, trainer.config.update_in_backward);
    if let Err(write) = reporter.finish() {
        return Err(crate::train_end::stopped_by_write(
            reporter.saves(),
            trainer,
            write,
            reporter.last_saved(),
        ));
    }
    let code = crate::train_end::conclude(
        (reporter.saves(), reporter.last_saved()),
        trainer,
        result,
        signals.received(),
    )?;
    match stop.lost() {
        Some(e) => bail!("{e}: the job stopped after step {}", trainer.state.step),
        None => Ok(code),
    }
}

/// Whether the trainer goes on from a saved run.
fn a_run_begun(trainer: &Trainer) -> bool {
    trainer.state.step > 0
}

/// `--device`, `--dtype`, `--tf32`; `--memory-limit` makes the host stand in for a device
/// of that size (a GPU has its own).
fn open_device(a: &TrainArgs, place: &Placement, dtype: &str) -> anyhow::Result<Arc<dyn Device>> {
    let device =
        device::resolve_with(&place.device, a.tf32, dtype, None, place.voice).map_err(|e| match &a.devices {
            // The device came from --devices (this rank's entry): say so.
            Some(list) => e.context(format!("--devices {list}")),
            None => e,
        })?;
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
fn start(a: &TrainArgs, loaded: Loaded, seed: u64, loss: LossKind) -> anyhow::Result<(RunSpec, Dataset, Dataset)> {
    // A classifier's outputs are its classes, a regression's its targets.
    let outputs = match loss {
        LossKind::CrossEntropy => setup::class_count(&loaded.train, &loaded.test),
        LossKind::Mse => loaded.train.target_count(),
    };
    if !loss.is_regression() {
        crate::classes::two_or_more(&loaded.train, &loaded.description)?;
    }
    let mut spec = a.model.spec(loaded.train.feature_count(), outputs)?;
    spec.loss = loss;
    let optimizer = a.step.optimizer()?;
    let lr = a.step.lr()?;
    let normalization = if a.standardize {
        Normalization::standardized(&loaded.train.features)
    } else {
        Normalization::scale_only(loaded.raw_scale)
    };
    let names = ("--layers", loaded.description.as_str());
    let (train, test) = run_data::prepare(loaded.train, loaded.test, &normalization, &spec, names)?;
    ignored_flags(a, &train, &loaded.description)?;
    let config = TrainConfig {
        settings: TrainSettings {
            seed,
            batch_size: a.step.batch_size,
            lr,
            schedule: LrSchedule::parse(&a.schedule)?,
            epochs: a.epochs.unwrap_or(DEFAULT_EPOCHS),
            augment_shift: setup::check_augment_shift(a.augment_shift, train.image_shape)?,
            validation: setup::validation(a.val_fraction.unwrap_or(0.0), a.early_stop)?,
        },
        optimizer,
        checkpoint: a.checkpoint.policy()?,
        // f16 on a GPU turns it on regardless.
        loss_scaling: false,
        update_in_backward: a.step.update_in_backward,
    };
    let test_split = crate::resume_flags::test_split(a, None);
    let run = RunSpec::new_run(spec, config, normalization, (test_split, train.image_shape));
    Ok((run, train, test))
}

/// Flags typed for something this run does not have would be silently ignored: refused.
fn ignored_flags(a: &TrainArgs, train: &Dataset, data: &str) -> anyhow::Result<()> {
    if a.typed("augment_shift") && a.augment_shift > 0 && train.image_shape.is_none() {
        bail!(
            "--augment-shift {}: shifts images, and {data} holds rows, not images",
            a.augment_shift
        );
    }
    Ok(())
}

/// A saved run continued with its own model, optimizer and settings; `None` when it has
/// already trained the epochs asked for.
fn resume(
    a: &TrainArgs,
    snapshot: Snapshot,
    loaded: Loaded,
    device: &Arc<dyn Device>,
    voice: Voice,
) -> anyhow::Result<Option<(RunSpec, Dataset, Dataset)>> {
    let path = a
        .resume
        .as_ref()
        .expect("resumed implies --resume")
        .display()
        .to_string();
    crate::resume_flags::check(a, &snapshot, &path)?;
    crate::resume_flags::check_test_split(a, &snapshot, &path)?;
    crate::same_data::check(&snapshot, &loaded, &path, voice)?;
    let typed_model = typed_model(a, &snapshot.model)?;
    let done = snapshot.state.epoch;
    let going_on = GoingOn {
        file: &path,
        typed_model,
        epochs: a.epochs,
        checkpoint: a.checkpoint.policy()?,
        update_in_backward: a.step.update_in_backward,
        early_stop: a.early_stop,
        image_shape: loaded.train.image_shape,
    };
    let Some(run) = RunSpec::going_on(snapshot, going_on)? else {
        println!("{path} has already trained {done} epochs; nothing to do (pass --epochs greater than {done})");
        return Ok(None);
    };
    let (train, test) = run_data::prepare(
        loaded.train,
        loaded.test,
        &run.normalization,
        &run.spec,
        (&format!("{path}'s model"), &loaded.description),
    )?;
    crate::resume_flags::check_validation(a, run.config.settings.validation, &path)?;
    let (epoch, step) = run.resumed_at().expect("a resumed run");
    voice.note(&format!(
        "resuming {path} at epoch {epoch} step {step} (its model, optimizer and settings are used)"
    ));
    let now = device.precision().to_string();
    let state = &run.resumed().expect("a resumed run").state;
    if let Some(then) = state.saved_dtype().filter(|d| *d != now) {
        let scaling = if state.loss_scaler.is_some() && !device.needs_loss_scaling() {
            "; its loss scaling ends"
        } else {
            ""
        };
        voice.note(&format!(
            "note: {path} trained in {then}; it goes on in {now} (--dtype){scaling}"
        ));
    }
    Ok(Some((run, train, test)))
}

/// The model typed again for a resumed run, with the widths it makes for the saved model's
/// data: `--depth D --width W (784-W-...-10)`, or `--layers` as given.
fn typed_model(a: &TrainArgs, saved: &MlpSpec) -> anyhow::Result<Option<TypedModel>> {
    if let Some(depth) = a.model.single_depth()? {
        let spec = a.model.spec(saved.inputs(), saved.classes())?;
        let width = a.model.width.unwrap_or(0);
        return Ok(Some(TypedModel {
            flags: format!("--depth {depth} --width {width} ({})", spec.layers_string()),
            widths: Some(spec.widths),
        }));
    }
    Ok(a.model.layers.as_ref().map(|layers| TypedModel {
        flags: format!("--layers {layers}"),
        // Widths alone: a spec that makes no model differs from every saved one.
        widths: MlpSpec::new(layers, &saved.activation, saved.dropout)
            .ok()
            .map(|s| s.widths),
    }))
}

fn print_banner(trainer: &Trainer, device: &Arc<dyn Device>, description: &str, data: &Data) {
    let (train, validation, test) = (&data.train, data.validation.as_ref(), &data.test);
    let c = &trainer.config;
    let dtype = device.precision().to_string();
    let configuration = Configuration::of_run(trainer, &dtype);
    println!(
        "chainrule {} · {} · {}",
        env!("CARGO_PKG_VERSION"),
        device.banner(),
        configuration.line()
    );
    let val = validation.map_or(String::new(), |v| format!(" · val {}", thousands(v.len() as u64)));
    println!(
        "data: {description} · train {}{val} · test {} · schedule {} · {}",
        thousands(train.len() as u64),
        thousands(test.len() as u64),
        c.settings.schedule.describe(),
        counted(c.settings.epochs, "epoch", "epochs")
    );
}

/// Locks every file this run writes (see [`lock_save`]): a second run writing metrics or a
/// plot there would interleave its lines or replace them; metrics going to a pipe or a
/// device take no lock.
fn lock_outputs(saves: &Saves) -> anyhow::Result<Vec<SaveLock>> {
    let stream = |p: &Option<PathBuf>| p.clone().filter(|p| std::fs::metadata(p).map_or(true, |m| m.is_file()));
    let metrics = stream(&saves.metrics);
    [
        ("--save", &saves.every_epoch),
        ("--save-best", &saves.best),
        ("--plot", &saves.plot),
        ("--metrics-out", &metrics),
    ]
    .into_iter()
    .filter_map(|(flag, p)| Some((flag, p.as_deref()?)))
    .map(|(flag, p)| lock_save(flag, p))
    .collect()
}

/// Fails now, not after the first epoch, when `--save` names a place that cannot be
/// written (or another run is saving there); the lock file's creation proves the folder
/// writable.
fn lock_save(flag: &str, path: &Path) -> anyhow::Result<SaveLock> {
    SaveLock::acquire(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::WouldBlock | std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{flag} {e}")
        }
        _ => anyhow::Error::new(e).context(format!("{flag} {}: cannot write in that folder", path.display())),
    })
}
