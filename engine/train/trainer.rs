//! The training loop: epochs of shuffled batches, one traced step program per batch
//! size, optimizer updates, evaluation after each epoch, and events for the caller
//! (progress, logging, saving, stopping).

use super::program::{ProgramError, StepProgram};
use crate::backend::{Batch, Device, PlacedModel};
use crate::data::{augment::Shift, Batches, Dataset, Normalization};
use crate::exec::ExecError;
use crate::graph::GraphError;
use crate::io::{snapshot::optimizer_tensor_name, Snapshot, TrainState};
use crate::memory::{MemoryError, MemoryReport, MemoryTracker};
use crate::nn::{Mlp, MlpSpec, SpecError};
use crate::ops::RunContext;
use crate::optim::{LossScaler, LrSchedule, OptimizerConfig};
use crate::plan::CheckpointPolicy;
use ndarray::{Array1, Array2, ArrayD};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: u64,
    pub batch_size: usize,
    pub lr: f64,
    pub schedule: LrSchedule,
    pub seed: u64,
    pub optimizer: OptimizerConfig,
    /// Largest random shift of image examples, in pixels (0: none; ignored for non-image data).
    pub augment_shift: usize,
    /// Which activations a step keeps for backward (the rest is recomputed).
    pub checkpoint: CheckpointPolicy,
    /// Dynamic loss scaling (always on for f16 matrix products; exact, and so testable, in f32).
    pub loss_scaling: bool,
}

impl TrainConfig {
    /// Plain SGD at a constant rate, seed 0, no augmentation: the step that `bench`, `remat`
    /// and `scale` time.
    pub fn sgd_benchmark(batch_size: usize, checkpoint: CheckpointPolicy) -> Self {
        TrainConfig {
            epochs: 1,
            batch_size,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            seed: 0,
            optimizer: OptimizerConfig::new(crate::optim::OptimizerKind::Sgd),
            augment_shift: 0,
            checkpoint,
            loss_scaling: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("the loss became {value} at step {step} (epoch {epoch}); the update was not applied")]
    NonFinite { value: f32, step: u64, epoch: u64 },
    #[error("parameter '{name}' became non-finite by step {step}")]
    NonFiniteParameters { name: String, step: u64 },
    #[error("{0}")]
    Data(String),
}

/// What the caller wants after an event.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Control {
    Continue,
    Stop,
}

#[derive(Clone, Debug)]
pub struct StepEvent {
    pub epoch: u64,
    /// Global step count after this step.
    pub step: u64,
    pub batch_in_epoch: u64,
    pub batches_per_epoch: u64,
    pub batch: usize,
    /// The step's loss, when it was read: every [`Trainer::log_every`] steps and at an
    /// epoch's last step (always on the CPU, where reading it costs nothing).
    pub loss: Option<f32>,
    pub lr: f64,
    pub memory: MemoryReport,
    pub predicted: MemoryReport,
}

#[derive(Clone, Debug)]
pub struct EvalResult {
    pub loss: f64,
    pub accuracy: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    pub examples: usize,
}

#[derive(Clone, Debug)]
pub struct EpochSummary {
    /// 1-based number of the epoch just finished.
    pub epoch: u64,
    pub step: u64,
    pub train_loss: f64,
    pub test: EvalResult,
    pub samples_per_sec: f64,
    pub peak_bytes: u64,
    pub predicted_peak_bytes: u64,
    pub seconds: f64,
    /// Dynamic loss scaling's state at the epoch's end, when training with it.
    pub loss_scaler: Option<LossScaler>,
}

pub struct Trainer {
    pub mlp: Mlp,
    device: Arc<dyn Device>,
    model: Box<dyn PlacedModel>,
    pub config: TrainConfig,
    pub normalization: Normalization,
    pub state: TrainState,
    programs: HashMap<(bool, usize), StepProgram>,
    /// `fit` reads a step's loss (which waits for a GPU) every this many steps, and at
    /// the end of each epoch; other steps' events carry no loss.
    pub log_every: u64,
}

const EVAL_BATCH: usize = 1000;

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
        let params = mlp
            .initial_parameters(config.seed)
            .into_iter()
            .map(|(n, v)| (n, v.mapv(|x| x as f32)))
            .collect();
        let scaler = (config.loss_scaling || device.needs_loss_scaling()).then(|| saved.unwrap_or_default());
        let model = device.place(&config.optimizer, params, scaler.clone())?;
        let state = TrainState {
            epoch: 0,
            batch_in_epoch: 0,
            step: 0,
            seed: config.seed,
            batch_size: config.batch_size,
            lr: config.lr,
            schedule: config.schedule.clone(),
            epochs: config.epochs,
            augment_shift: config.augment_shift,
            loss_scaler: scaler.clone(),
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
        })
    }

    /// Continues from a checkpoint. `epochs` is the new total length of the run.
    pub fn from_snapshot(ckpt: Snapshot, epochs: u64, device: &Arc<dyn Device>) -> Result<Self, TrainError> {
        let config = TrainConfig {
            epochs,
            batch_size: ckpt.state.batch_size,
            lr: ckpt.state.lr,
            schedule: ckpt.state.schedule.clone(),
            seed: ckpt.state.seed,
            optimizer: ckpt.optimizer.clone(),
            augment_shift: ckpt.state.augment_shift,
            checkpoint: CheckpointPolicy::None,
            loss_scaling: ckpt.state.loss_scaler.is_some(),
        };
        let mut t = Trainer::with_scaler(
            ckpt.model.clone(),
            config,
            ckpt.normalization.clone(),
            device,
            ckpt.state.loss_scaler.clone(),
        )?;
        for name in t.mlp.parameter_names() {
            let v = ckpt
                .tensors
                .get(&name)
                .ok_or_else(|| TrainError::Data(format!("missing tensor '{name}'")))?;
            t.model.set_param(&name, v)?;
            for state in t.config.optimizer.state_names() {
                let key = optimizer_tensor_name(&name, state);
                let saved = ckpt
                    .tensors
                    .get(&key)
                    .ok_or_else(|| TrainError::Data(format!("missing optimizer tensor '{key}'")))?;
                t.model.set_optimizer_state(&name, state, saved)?;
            }
        }
        // Steps a loss scaler skipped applied no update.
        let skipped = ckpt.state.loss_scaler.as_ref().map_or(0, |s| s.skipped);
        t.model.set_applied_updates(ckpt.state.step.saturating_sub(skipped))?;
        t.state = TrainState {
            epochs,
            loss_scaler: t.state.loss_scaler.clone(),
            ..ckpt.state
        };
        Ok(t)
    }

    /// Runs the first step's batch with and without checkpointing (no update) and returns
    /// the largest absolute gradient difference and the parameter where it occurs.
    pub fn verify_checkpoint(&mut self, x: Array2<f32>, y: Array1<f32>) -> Result<(f32, Option<String>), TrainError> {
        let batch = x.nrows();
        let ctx = RunContext {
            seed: self.state.seed,
            step: self.state.step,
            training: true,
        };
        let resident = self.device.tracker().report();
        let scaled = self.loss_scaled();
        let plain = StepProgram::training(&self.mlp, batch, CheckpointPolicy::None, &resident, scaled)?;
        self.program(true, batch)?;
        let planned = &self.programs[&(true, batch)];
        let a = self.model.gradients(&plain.program(), x.clone(), y.clone(), &ctx)?;
        let b = self.model.gradients(&planned.program(), x, y, &ctx)?;
        let mut worst = (0.0f32, None);
        for ((name, ga), gb) in plain.params.iter().zip(&a).zip(&b) {
            let d = ga
                .iter()
                .zip(gb.iter())
                .map(|(u, v)| (u - v).abs())
                .fold(0.0f32, f32::max);
            if d > worst.0 || (d.is_nan() && !worst.0.is_nan()) {
                worst = (d, Some(name.clone()));
            }
        }
        Ok(worst)
    }

    /// Whether steps run with dynamic loss scaling (fixed when the trainer is made).
    fn loss_scaled(&self) -> bool {
        self.state.loss_scaler.is_some()
    }

    /// Switches the checkpoint policy (the next step plans again).
    pub fn set_checkpoint(&mut self, policy: CheckpointPolicy) {
        self.config.checkpoint = policy;
        self.programs.retain(|(training, _), _| !training);
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

    /// The device this trainer runs on.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.device
    }

    pub fn to_snapshot(&self) -> Result<Snapshot, TrainError> {
        let mut tensors = std::collections::BTreeMap::new();
        for name in self.mlp.parameter_names() {
            if let Some(p) = self.model.param(&name)? {
                tensors.insert(name.clone(), p);
            }
        }
        for (param, state, data) in self.model.optimizer_state()? {
            tensors.insert(optimizer_tensor_name(&param, state), data);
        }
        let mut state = self.state.clone();
        state.loss_scaler = self.model.loss_scaler()?;
        Ok(Snapshot {
            model: self.mlp.spec.clone(),
            optimizer: self.model.optimizer_config().clone(),
            normalization: self.normalization.clone(),
            state,
            tensors,
        })
    }

    fn program(&mut self, training: bool, batch: usize) -> Result<&StepProgram, TrainError> {
        if !self.programs.contains_key(&(training, batch)) {
            let p = if training {
                let resident = self.device.tracker().report();
                let scaled = self.loss_scaled();
                StepProgram::training(&self.mlp, batch, self.config.checkpoint, &resident, scaled)?
            } else {
                StepProgram::evaluation(&self.mlp, batch)?
            };
            self.programs.insert((training, batch), p);
        }
        Ok(&self.programs[&(training, batch)])
    }

    pub fn steps_per_epoch(&self, train_len: usize) -> u64 {
        Batches::count(train_len, self.config.batch_size) as u64
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
            // On a GPU the guard has the details (and winds the step count back).
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
    /// device. A non-finite loss stops a run on the host here; on a GPU the step guard
    /// skips that update and every later one until [`Self::take_nonfinite`] reports it.
    /// Returns the step's memory, measured and predicted.
    fn step(&mut self, data: Batch, lr: f64) -> Result<(MemoryReport, MemoryReport), TrainError> {
        let batch = data.len();
        let ctx = RunContext {
            seed: self.state.seed,
            step: self.state.step,
            training: true,
        };
        let tracker = self.device.tracker().clone();
        self.program(true, batch)?;
        let program = &self.programs[&(true, batch)];
        let predicted = program.predict_with(&tracker.report(), self.device.operand_copies());
        tracker.reset_peak();
        self.model
            .train(&program.program(), data, &ctx, lr, self.state.step + 1)?;
        let measured = tracker.report();
        if self.model.loss_is_free() {
            let value = self.model.last_loss()?;
            if !value.is_finite() {
                return Err(TrainError::NonFinite {
                    value,
                    step: self.state.step + 1,
                    epoch: self.state.epoch + 1,
                });
            }
        }
        self.state.step += 1;
        Ok((measured, predicted))
    }

    /// Fails if the GPU's step guard saw a non-finite loss, winding the step count back to
    /// the step before it: the parameters are those from before that step.
    fn take_nonfinite(&mut self) -> Result<(), TrainError> {
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

    /// Loss, accuracy and confusion matrix over a whole dataset (dropout off).
    pub fn evaluate(&mut self, data: &Dataset) -> Result<EvalResult, TrainError> {
        let classes = self.mlp.spec.classes();
        let mut confusion = vec![vec![0u64; classes]; classes];
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let ctx = RunContext {
            seed: self.state.seed,
            step: self.state.step,
            training: false,
        };
        for (x, y) in Batches::sequential(data, EVAL_BATCH) {
            let batch = x.nrows();
            self.program(false, batch)?;
            let program = &self.programs[&(false, batch)];
            let labels: Vec<usize> = y.iter().map(|&v| v as usize).collect();
            let (predicted, loss) = self.model.evaluate(&program.program(), x, y, &ctx)?;
            loss_sum += loss as f64 * batch as f64;
            for (&pred, &truth) in predicted.iter().zip(&labels) {
                correct += (pred == truth) as usize;
                if truth < classes {
                    confusion[truth][pred] += 1;
                }
            }
        }
        let n = data.len().max(1);
        Ok(EvalResult {
            loss: loss_sum / n as f64,
            accuracy: correct as f64 / n as f64,
            confusion,
            examples: data.len(),
        })
    }

    /// A parameter holding NaN or infinity, if any: nothing like that gets saved.
    pub fn first_non_finite_parameter(&self) -> Result<Option<String>, TrainError> {
        for n in self.mlp.parameter_names() {
            if self.model.param(&n)?.is_some_and(|p| p.iter().any(|v| !v.is_finite())) {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    /// The augmentation for `train`, if asked for and the data are images.
    fn shift_for(&self, train: &Dataset) -> Option<Shift> {
        let (rows, cols) = train.image_shape?;
        if self.config.augment_shift == 0 {
            return None;
        }
        let mut blank = Array2::zeros((1, rows * cols));
        self.normalization.apply(&mut blank);
        Some(Shift {
            rows,
            cols,
            max: self.config.augment_shift,
            fill: blank.into_raw_vec_and_offset().0,
        })
    }

    /// Trains until `config.epochs` epochs are done or an event asks to stop. `on_step`
    /// sees every step, `on_epoch` every finished epoch (after evaluating `test`).
    pub fn fit(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        mut on_step: impl FnMut(&Trainer, &StepEvent) -> Control,
        mut on_epoch: impl FnMut(&Trainer, &EpochSummary) -> Control,
    ) -> Result<Control, TrainError> {
        if train.is_empty() {
            return Err(TrainError::Data("the training set is empty".into()));
        }
        let spe = self.steps_per_epoch(train.len());
        let total = spe * self.config.epochs;
        let shift = self.shift_for(train);
        // On a GPU the training set is uploaded once; batches are gathered there.
        let held = self.model.hold_training_set(train, shift.as_ref())?;
        while self.state.epoch < self.config.epochs {
            let started = std::time::Instant::now();
            let (mut seen, mut peak, mut predicted_peak) = (0usize, 0u64, 0u64);
            let batches = Batches::shuffled(train, self.config.batch_size, self.state.seed, self.state.epoch)
                .with_shift(shift.clone(), self.state.seed, self.state.epoch)
                .skip_batches(self.state.batch_in_epoch as usize);
            let (seed, epoch) = (self.state.seed, self.state.epoch);
            let batches: Box<dyn Iterator<Item = Batch>> = if held {
                let rows: Vec<Vec<usize>> = batches.rows().map(<[usize]>::to_vec).collect();
                let all: Vec<usize> = rows.concat();
                let offsets: Vec<(isize, isize)> = all
                    .iter()
                    .map(|&r| shift.as_ref().map_or((0, 0), |s| s.offsets(r, seed, epoch)))
                    .collect();
                self.model.start_epoch(&all, &offsets)?;
                let mut start = 0;
                Box::new(rows.into_iter().map(move |rows| {
                    let batch = Batch::Held { start, len: rows.len() };
                    start += rows.len();
                    batch
                }))
            } else {
                Box::new(batches.map(|(x, y)| Batch::Host(x, y)))
            };
            for data in batches {
                let batch = data.len();
                let lr = self.config.schedule.lr(self.config.lr, self.state.step, spe, total);
                let (memory, predicted) = self.step(data, lr)?;
                self.state.batch_in_epoch += 1;
                // Reading a GPU loss waits for the device: only when it is reported.
                let report = self.model.loss_is_free()
                    || self.state.step.is_multiple_of(self.log_every.max(1))
                    || self.state.batch_in_epoch == spe;
                let loss = if report {
                    let value = self.model.last_loss()?;
                    self.take_nonfinite()?;
                    Some(value)
                } else {
                    None
                };
                seen += batch;
                peak = peak.max(memory.peak_total);
                predicted_peak = predicted_peak.max(predicted.peak_total);
                let event = StepEvent {
                    epoch: self.state.epoch + 1,
                    step: self.state.step,
                    batch_in_epoch: self.state.batch_in_epoch,
                    batches_per_epoch: spe,
                    batch,
                    loss,
                    lr,
                    memory,
                    predicted,
                };
                if on_step(self, &event) == Control::Stop {
                    // The caller may save now: nothing non-finite may be pending.
                    self.take_nonfinite()?;
                    return Ok(Control::Stop);
                }
            }
            self.take_nonfinite()?;
            let loss_sum = self.model.take_loss_sum()?;
            let seconds = started.elapsed().as_secs_f64();
            if let Some(name) = self.first_non_finite_parameter()? {
                return Err(TrainError::NonFiniteParameters {
                    name,
                    step: self.state.step,
                });
            }
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            let test_result = self.evaluate(test)?;
            let summary = EpochSummary {
                epoch: self.state.epoch,
                step: self.state.step,
                train_loss: loss_sum / seen.max(1) as f64,
                test: test_result,
                samples_per_sec: seen as f64 / seconds.max(1e-9),
                peak_bytes: peak,
                predicted_peak_bytes: predicted_peak,
                seconds,
                loss_scaler: self.model.loss_scaler()?,
            };
            if on_epoch(self, &summary) == Control::Stop {
                return Ok(Control::Stop);
            }
        }
        Ok(Control::Continue)
    }
}
