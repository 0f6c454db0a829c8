//! A trainer: a model placed on a device, its step programs (traced once per batch size),
//! one step at a time, and the snapshot it saves and resumes from. The epoch loop is
//! [`super::fit`].

use super::fits_in_memory::{ensure_host_room, ensure_room, predicted_with_room};
use super::program::{StepOptions, StepProgram};
use super::scale::resident_bytes_for;
use super::{TrainConfig, TrainError};
use crate::backend::{Batch, Device, GraphStatus, PlacedModel, StepGraphs, TrainingStep};
use crate::data::{augment::Shift, Batches, Dataset, Normalization};
use crate::io::{snapshot::optimizer_tensor_name, Snapshot, TrainSettings, TrainState, Validation};
use crate::memory::{Category, MemoryReport, MemoryTracker};
use crate::nn::{Mlp, MlpSpec};
use crate::ops::RunContext;
use crate::optim::loss_scale::NO_UPDATES_INSIDE_BACKWARD;
use crate::optim::LossScaler;
use crate::plan::{CheckpointPolicy, HalfLayout};
use ndarray::{Array1, Array2, ArrayD};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Trainer {
    pub mlp: Mlp,
    pub(super) device: Arc<dyn Device>,
    pub(super) model: Box<dyn PlacedModel>,
    pub config: TrainConfig,
    pub normalization: Normalization,
    pub state: TrainState,
    pub(super) programs: HashMap<(bool, usize), StepProgram>,
    /// `fit` reads a step's loss (which waits for a GPU) every this many steps, and at
    /// the end of each epoch; other steps' events carry no loss.
    pub log_every: u64,
    /// This trainer's place in a data-parallel job ([`Self::join`]), if in one.
    pub(super) group: Option<crate::dist::Group>,
    /// How many rows it trains on, once [`Self::fit`] has started.
    pub train_rows: Option<usize>,
}

/// Updates inside backward asked for beside dynamic loss scaling.
fn updates_under_scaling() -> TrainError {
    TrainError::Config(format!(
        "--update-in-backward with loss scaling (--dtype f16, or a run saved with it): {NO_UPDATES_INSIDE_BACKWARD}; use --dtype bf16 or f32"
    ))
}

impl Trainer {
    /// A fresh model with seeded initial weights.
    pub fn new(
        spec: MlpSpec,
        config: TrainConfig,
        normalization: Normalization,
        device: &Arc<dyn Device>,
    ) -> Result<Self, TrainError> {
        Self::with_scaler(spec, config, normalization, device, None)
    }

    /// [`Self::new`], with loss scaling (if on) starting from `saved` instead of afresh.
    fn with_scaler(
        spec: MlpSpec,
        config: TrainConfig,
        normalization: Normalization,
        device: &Arc<dyn Device>,
        saved: Option<LossScaler>,
    ) -> Result<Self, TrainError> {
        let mlp = Mlp::new(spec)?;
        // The weights are drawn in f64 on the host, then placed in f32 with the optimizer's
        // state: the placement must fit the device (its limit too), the draw the machine.
        let resident = resident_bytes_for(&mlp.spec, &config.optimizer, device.half_layout());
        ensure_room(
            device.as_ref(),
            resident.live.total(),
            "the parameters and optimizer state",
        )?;
        let drawn = 3 * resident.live.get(Category::Parameters);
        ensure_host_room(drawn)?;
        let params = mlp
            .initial_parameters(config.settings.seed)
            .into_iter()
            .map(|(n, v)| (n, v.mapv(|x| x as f32)))
            .collect();
        let scaler = (config.loss_scaling || device.needs_loss_scaling()).then(|| saved.unwrap_or_default());
        if config.update_in_backward && scaler.is_some() {
            return Err(updates_under_scaling());
        }
        let buffers = mlp.initial_buffers().into_iter();
        let buffers = buffers.map(|(n, v)| (n, v.mapv(|x| x as f32))).collect();
        let model = device.place(&config.optimizer, params, buffers, scaler.clone())?;
        let state = TrainState {
            epoch: 0,
            batch_in_epoch: 0,
            step: 0,
            loss_scaler: scaler.clone(),
            best: None,
            dtype: Some(device.precision().to_string()),
            test_split: None,
            image_shape: None,
            data: None,
        };
        Ok(Trainer {
            mlp,
            device: device.clone(),
            model,
            config,
            normalization,
            state,
            programs: HashMap::new(),
            log_every: 1,
            group: None,
            train_rows: None,
        })
    }

    /// Continues from a snapshot (a saved run). `epochs` is the new total length of the run.
    pub fn from_snapshot(snapshot: Snapshot, epochs: u64, device: &Arc<dyn Device>) -> Result<Self, TrainError> {
        Self::restore(snapshot, epochs, device, true)
    }

    /// A snapshot's model for evaluation: its weights are all it needs (a weights-only
    /// file will do); optimizer state, if any, is left out.
    pub fn for_evaluation(snapshot: Snapshot, device: &Arc<dyn Device>) -> Result<Self, TrainError> {
        let epochs = snapshot.settings.epochs;
        Self::restore(snapshot, epochs, device, false)
    }

    fn restore(
        snapshot: Snapshot,
        epochs: u64,
        device: &Arc<dyn Device>,
        with_optimizer: bool,
    ) -> Result<Self, TrainError> {
        // An f16 run's loss scaling ends where it goes on in a dtype that needs none (it
        // stays for a run that chose it in f32, and where the saved dtype is unknown).
        let f16_run = snapshot.state.saved_dtype().as_deref() == Some("f16");
        let keep_scaler = snapshot.state.loss_scaler.is_some() && (device.needs_loss_scaling() || !f16_run);
        let config = TrainConfig {
            settings: TrainSettings {
                epochs,
                ..snapshot.settings.clone()
            },
            optimizer: snapshot.optimizer.clone(),
            checkpoint: CheckpointPolicy::None,
            loss_scaling: keep_scaler,
            update_in_backward: false,
        };
        let mut t = Trainer::with_scaler(
            snapshot.model.clone(),
            config,
            snapshot.normalization.clone(),
            device,
            snapshot.state.loss_scaler.clone().filter(|_| keep_scaler),
        )?;
        for name in t.mlp.parameter_names() {
            let v = snapshot
                .tensors
                .get(&name)
                .ok_or_else(|| TrainError::Data(format!("missing tensor '{name}'")))?;
            t.model.set_param(&name, v)?;
            let states = if with_optimizer {
                t.config.optimizer.state_names()
            } else {
                &[]
            };
            for state in states {
                let key = optimizer_tensor_name(&name, state);
                let saved = snapshot
                    .tensors
                    .get(&key)
                    .ok_or_else(|| TrainError::Data(format!("missing optimizer tensor '{key}'")))?;
                t.model.set_optimizer_state(&name, state, saved)?;
            }
        }
        for name in t.mlp.buffer_names() {
            let v = snapshot
                .tensors
                .get(&name)
                .ok_or_else(|| TrainError::Data(format!("missing buffer '{name}'")))?;
            t.model.set_param(&name, v)?;
        }
        // Steps a loss scaler skipped applied no update.
        let skipped = snapshot.state.loss_scaler.as_ref().map_or(0, |s| s.skipped);
        t.model
            .set_applied_updates(snapshot.state.step.saturating_sub(skipped))?;
        t.state = TrainState {
            loss_scaler: t.state.loss_scaler.clone(),
            dtype: t.state.dtype.clone(),
            ..snapshot.state
        };
        Ok(t)
    }

    /// Whether steps run with dynamic loss scaling (fixed when the trainer is made).
    /// Whether this run trains with dynamic loss scaling (f16).
    pub fn loss_scaled(&self) -> bool {
        self.state.loss_scaler.is_some()
    }

    /// Changes the validation settings (a resumed run given a new `--early-stop`).
    pub fn set_validation(&mut self, validation: Validation) {
        self.config.settings.validation = validation;
    }

    /// Switches the checkpoint policy (the next step plans again).
    pub fn set_checkpoint(&mut self, policy: CheckpointPolicy) {
        self.config.checkpoint = policy;
        self.programs.retain(|(training, _), _| !training);
    }

    /// Turns updates inside backward on or off (the next step plans again). Refused with
    /// dynamic loss scaling: an overflowing gradient found late in backward would leave
    /// the layers updated before it changed.
    pub fn set_update_in_backward(&mut self, on: bool) -> Result<(), TrainError> {
        if on && self.loss_scaled() {
            return Err(updates_under_scaling());
        }
        if on && self.config.optimizer.clip_grad_norm.is_some() {
            return Err(TrainError::Config(format!(
                "--update-in-backward with --clip-grad-norm (typed, or a run saved with it): {}; drop --update-in-backward",
                crate::optim::clip::NO_CLIPPING_INSIDE_BACKWARD
            )));
        }
        self.config.update_in_backward = on;
        self.programs.retain(|(training, _), _| !training);
        Ok(())
    }

    /// Whole-step CUDA graphs (`--cuda-graph`); a device without them refuses `On`.
    pub fn set_step_graphs(&mut self, mode: StepGraphs) -> Result<(), TrainError> {
        Ok(self.model.set_step_graphs(mode)?)
    }
    pub fn step_graphs(&self) -> GraphStatus {
        self.model.step_graphs()
    }

    /// The plan of the training program for `batch`, planning it if need be.
    pub fn plan_for(&mut self, batch: usize) -> Result<Option<&crate::plan::Plan>, TrainError> {
        Ok(self.program(true, batch)?.plan.as_ref())
    }

    /// A parameter's current value (copied from the device if need be).
    pub fn parameter(&self, name: &str) -> Result<Option<ArrayD<f32>>, TrainError> {
        Ok(self.model.param(name)?)
    }

    pub fn tracker(&self) -> Arc<MemoryTracker> {
        self.device.tracker().clone()
    }

    /// The run as a snapshot to save. Refuses a model with a non-finite parameter: every
    /// save (after an epoch, on Ctrl-C, the best so far) goes through here.
    pub fn to_snapshot(&self) -> Result<Snapshot, TrainError> {
        let mut tensors = std::collections::BTreeMap::new();
        for name in self.mlp.parameter_names().into_iter().chain(self.mlp.buffer_names()) {
            if let Some(p) = self.model.param(&name)? {
                if p.iter().any(|v| !v.is_finite()) {
                    return Err(TrainError::NonFiniteParameters {
                        name,
                        step: self.state.step,
                    });
                }
                tensors.insert(name.clone(), p);
            }
        }
        for (param, state, data) in self.model.optimizer_state()? {
            tensors.insert(optimizer_tensor_name(&param, state), data);
        }
        // One batch a training step, as PyTorch counts them.
        for name in self.mlp.batch_counters() {
            tensors.insert(name, ArrayD::from_elem(vec![], self.state.step as f32));
        }
        let mut state = self.state.clone();
        state.loss_scaler = self.model.loss_scaler()?;
        Ok(Snapshot {
            model: self.mlp.spec.clone(),
            optimizer: self.model.optimizer_config().clone(),
            normalization: self.normalization.clone(),
            settings: self.config.settings.clone(),
            state,
            tensors,
        })
    }

    /// How this trainer's device holds 16-bit values (`--dtype`).
    pub fn half_layout(&self) -> HalfLayout {
        self.device.half_layout()
    }

    pub(super) fn program(&mut self, training: bool, batch: usize) -> Result<&StepProgram, TrainError> {
        if !self.programs.contains_key(&(training, batch)) {
            let p = if training {
                let resident = self.device.tracker().report();
                let scaled = self.loss_scaled();
                let options = StepOptions {
                    loss_scaled: scaled,
                    layout: self.device.half_layout(),
                    update_in_backward: self.config.update_in_backward,
                    rates: self.device.rates(),
                };
                let p = StepProgram::training(&self.mlp, batch, self.config.checkpoint, &resident, options)?;
                if let Some(plan) = &p.plan {
                    tracing::info!(
                        batch,
                        policy = %plan.policy,
                        chosen = %crate::plan::chosen_name(plan),
                        predicted_peak_bytes = plan.predicted.peak_total,
                        recompute_percent = 100.0 * plan.recompute_fraction(),
                        "planned a training step"
                    );
                }
                p
            } else {
                StepProgram::evaluation(&self.mlp, batch)?.stored_for(self.device.half_layout())
            };
            self.programs.insert((training, batch), p);
        }
        Ok(&self.programs[&(training, batch)])
    }

    pub fn steps_per_epoch(&self, train_len: usize) -> u64 {
        Batches::count(train_len, self.config.settings.batch_size) as u64
    }

    /// One update on a batch. Returns the loss (before the update) and the step's memory,
    /// measured and predicted. A non-finite loss leaves the parameters untouched.
    pub fn train_step(
        &mut self,
        x: Array2<f32>,
        y: Array1<f32>,
        lr: f64,
    ) -> Result<(f32, MemoryReport, MemoryReport), TrainError> {
        self.train_batch(Batch::Host(x, y), lr)
    }

    /// [`Self::train_step`] for a batch that may be held on the device. Reads the loss
    /// back, so it waits for the device.
    pub fn train_batch(&mut self, data: Batch, lr: f64) -> Result<(f32, MemoryReport, MemoryReport), TrainError> {
        let (measured, predicted) = self.step(data, lr)?;
        let loss = self.model.last_loss()?;
        if !loss.is_finite() {
            // The guard has the details (and winds the step count back).
            self.take_nonfinite()?;
            return Err(TrainError::NonFinite {
                value: loss,
                step: self.state.step,
                epoch: self.state.epoch + 1,
            });
        }
        Ok((loss, measured, predicted))
    }

    /// Keeps `data` on the device, if the device gathers batches itself (a GPU), for
    /// [`Batch::Held`] batches in the order given to [`Self::start_epoch`].
    pub fn hold_training_set(&mut self, data: &Dataset, shift: Option<&Shift>) -> Result<bool, TrainError> {
        Ok(self.model.hold_training_set(data, shift)?)
    }

    /// An epoch's row order and shifts for [`Batch::Held`] batches.
    pub fn start_epoch(&mut self, rows: &[usize], offsets: &[(isize, isize)]) -> Result<(), TrainError> {
        Ok(self.model.start_epoch(rows, offsets)?)
    }

    /// One update whose loss stays where it was computed: on a GPU nothing waits for the
    /// device. After a non-finite loss the step guard skips that update and every later
    /// one until [`Self::take_nonfinite`] reports it. Returns the step's memory, measured
    /// and predicted.
    pub(super) fn step(&mut self, data: Batch, lr: f64) -> Result<(MemoryReport, MemoryReport), TrainError> {
        let (data, first_row, share) = self.shard(data);
        // A rank with no rows of a small last batch still takes part: any program's
        // parameter list will do for it.
        let batch = data.len().max(1);
        let ctx = RunContext {
            seed: self.config.settings.seed,
            step: self.state.step,
            training: true,
            first_row,
        };
        let tracker = self.device.tracker().clone();
        self.program(true, batch)?;
        let program = &self.programs[&(true, batch)];
        let predicted = match data.is_empty() {
            true => self.predicted_without_rows(),
            false => predicted_with_room(self.device.as_ref(), program, "a training step")?,
        };
        tracker.reset_peak();
        let program = program.program();
        self.model.train(TrainingStep {
            program: &program,
            batch: data,
            ctx: &ctx,
            lr,
            step: self.state.step + 1,
            rank: self.group.as_ref().zip(share),
        })?;
        let measured = tracker.report();
        self.state.step += 1;
        Ok((measured, predicted))
    }

    /// Fails if the step guard saw a non-finite loss, winding the step count back to the
    /// step before it: the parameters are those from before that step.
    pub(super) fn take_nonfinite(&mut self) -> Result<(), TrainError> {
        let Some((step, value)) = self.model.first_nonfinite()? else {
            return Ok(());
        };
        let undone = self.state.step.saturating_sub(step - 1);
        self.state.step -= undone;
        self.state.batch_in_epoch = self.state.batch_in_epoch.saturating_sub(undone);
        Err(TrainError::NonFinite {
            value,
            step,
            epoch: self.state.epoch + 1,
        })
    }
}
