//! One training step of a [`GpuModel`]: its batch bound, forward and backward run, the
//! updates applied (after backward or inside it), the guard closing it and its sums kept,
//! all enqueued on the stream with nothing read back. Under `--cuda-graph` the step is
//! captured once and replayed (step_graph.rs); as one rank of a data-parallel job its
//! gradients are summed over the ranks as backward makes them final.

use super::clock::lr_word;
use super::model::GpuModel;
use super::step_graph::StepKey;
use super::{data_parallel, ops_launch, optimizer, DeviceTensor};
use crate::autodiff::LOSS_SCALE_INPUT;
use crate::backend::device::Batch;
use crate::dist::{group::StepShare, Group};
use crate::exec::{self, Backend, ExecError, Parameters, Program};
use crate::kernels::ClockWord;
use crate::kernels::GuardFlag;
use crate::memory::Category;
use crate::ops::RunContext;
use crate::plan::Storage;

/// What one training step is asked to do, besides its batch.
#[derive(Clone, Copy)]
pub(super) struct StepCall<'a, 'p> {
    pub program: &'a Program<'p>,
    pub ctx: &'a RunContext,
    pub lr: f64,
    /// 1-based, as the step guard records it.
    pub step: u64,
    /// As one rank of a data-parallel job.
    pub dp: Option<(&'a Group, StepShare)>,
}

impl<'a, 'p> StepCall<'a, 'p> {
    pub fn of(program: &'a Program<'p>, ctx: &'a RunContext, lr: f64, step: u64) -> Self {
        StepCall {
            program,
            ctx,
            lr,
            step,
            dp: None,
        }
    }

    /// The same step as rank `share` of `group`'s data-parallel job.
    pub fn on_rank(self, group: &'a Group, share: StepShare) -> Self {
        StepCall {
            dp: Some((group, share)),
            ..self
        }
    }
}

impl GpuModel {
    /// A step whose schedule updates the parameters inside backward: its `(loss, correct)`
    /// (the global batch's in a data-parallel job, `dp`), the loss flagged in the step guard
    /// whether or not an update ran to flag it.
    fn run_updating(&mut self, call: StepCall, batch: Batch) -> Result<(DeviceTensor, DeviceTensor), ExecError> {
        let StepCall {
            program, ctx, lr, dp, ..
        } = call;
        if self.guard.dynamic {
            return Err(ExecError::State(
                crate::optim::loss_scale::NO_UPDATES_INSIDE_BACKWARD.into(),
            ));
        }
        let be = self.be.clone();
        let (rows, order) = (batch.len(), crate::backend::update_order(program));
        // Zeros stand in for a rank's outputs when it has no rows (and only then).
        let (nothing, inputs) = match rows {
            0 => (self.nothing_to_add(program)?, Vec::new()),
            _ => (Vec::new(), self.inputs(program, batch)?),
        };
        let mut updates = optimizer::InBackward {
            be: &be,
            params: &mut self.params,
            state: &mut self.state,
            config: &self.config,
            lr,
            guard: &self.guard,
            loss_checked: false,
            dp,
            global_loss: None,
        };
        let (loss, mut correct) = if rows == 0 {
            // No rows of this (small, last) batch: take part in every sum, in the schedule's
            // order, with zeros (`nothing` holds a zero loss, gradient and count per output).
            let mut nothing = nothing.into_iter();
            let (loss, mut grads) = (nothing.next().expect("a loss"), nothing.collect::<Vec<_>>());
            let correct = grads.pop().expect("a count");
            for name in &order {
                let at = program.params.iter().position(|p| p == name).expect("a parameter");
                updates.update(name, &mut grads[at], &loss)?;
            }
            (loss, correct)
        } else {
            let mut o = exec::run_updating(be.as_ref(), program.graph, program.schedule, &mut updates, inputs, ctx)?;
            (o.outputs.remove(0), o.outputs.remove(0))
        };
        let checked = updates.loss_checked;
        let loss = updates.global_loss.take().unwrap_or(loss);
        if !checked {
            self.guard.flag_nonfinite(&be, &loss, GuardFlag::NonfiniteLoss)?;
        }
        if let Some((group, _)) = dp {
            // The loss was summed at the first update; the right answers remain.
            data_parallel::sum_count(group, &mut correct)?;
        }
        Ok((loss, correct))
    }

    /// What `program` binds for `batch`.
    pub(super) fn inputs(
        &self,
        program: &Program,
        batch: Batch,
    ) -> Result<Vec<(&'static str, DeviceTensor)>, ExecError> {
        let be = &self.be;
        // A batch only 16-bit products read is gathered or uploaded in 16 bits.
        let storage = program.input_storage("x");
        let (x, y) = match batch {
            Batch::Host(x, y) => (
                match storage {
                    Storage::Half => be.upload_half(&x.into_dyn(), Category::Temporaries)?,
                    Storage::F32 => be.upload(&x.into_dyn(), Category::Temporaries)?,
                },
                be.upload(&y.into_dyn(), Category::Temporaries)?,
            ),
            Batch::Held { start, len } => match &self.held {
                Some(data) => data.gather(start, len, storage)?,
                None => return Err(ExecError::Device("a held batch without a held training set".into())),
            },
        };
        let mut inputs = vec![("x", x), ("labels", y)];
        if program.loss_scaled {
            // A device-to-device copy: the scale never visits the host.
            inputs.push((
                LOSS_SCALE_INPUT,
                be.duplicate(&self.guard.scale, Category::Temporaries)?,
            ));
        }
        Ok(inputs)
    }

    /// One step, alone or (`dp`) as one rank of a data-parallel job whose gradients, loss
    /// and right answers NCCL sums on the stream before the guard and the update see them.
    pub(super) fn train_step(&mut self, call: StepCall, batch: Batch) -> Result<(), ExecError> {
        let (program, ctx, lr, step, dp) = (call.program, call.ctx, call.lr, call.step, call.dp);
        // Everything a step reads that changes between steps, written once, before it.
        let start = match batch {
            Batch::Held { start, .. } => start as u64,
            Batch::Host(..) => 0,
        };
        let clock = [
            (ClockWord::DropoutStep, ctx.step),
            (ClockWord::GuardStep, step),
            (ClockWord::BatchStart, start),
            (ClockWord::LearningRate, lr_word(lr)),
        ];
        self.be.hold_clock(&clock)?;
        let key = match (&batch, dp) {
            (_, Some(_)) => Err("a data-parallel step (NCCL sums on their own stream) is not captured"),
            (Batch::Host(..), _) => Err("batches from the host are not captured"),
            (Batch::Held { len, .. }, None) => Ok(StepKey {
                program: program.id,
                rows: *len,
            }),
        };
        let mut graphs = std::mem::take(&mut self.graphs);
        let be = self.be.clone();
        let mut batch = Some(batch);
        let ran = graphs.run(&be, key, || {
            // A failed capture runs the step again eagerly: a held batch is only a range.
            let again = match &batch {
                Some(Batch::Held { start, len }) => Batch::Held {
                    start: *start,
                    len: *len,
                },
                _ => batch
                    .take()
                    .ok_or_else(|| ExecError::Device("a host batch ran twice".into()))?,
            };
            self.enqueue_step(call, again)
        });
        self.graphs = graphs;
        ran
    }

    /// Enqueues one step on the stream (see [`Self::train_step`]).
    fn enqueue_step(&mut self, call: StepCall, batch: Batch) -> Result<(), ExecError> {
        let (program, ctx, lr, step, dp) = (call.program, call.ctx, call.lr, call.step, call.dp);
        let weight = dp.map_or(batch.len(), |(_, share)| share.global_rows) as f32;
        let be = self.be.clone();
        if program.updates_in_backward {
            let (loss, correct) = self.run_updating(call, batch)?;
            return self.close_step(loss, correct, weight, step);
        }
        let mut o = match dp {
            None => self.run(program, batch, ctx)?,
            Some((group, share)) => self.run_shard(program, batch, ctx, group, share)?,
        };
        let loss = o.remove(0);
        let correct = o.pop().expect("a training program counts its correct rows last");
        self.guard.flag_nonfinite(&be, &loss, GuardFlag::NonfiniteLoss)?;
        if self.guard.dynamic {
            for grad in &o {
                self.guard.flag_nonfinite(&be, grad, GuardFlag::Overflow)?;
            }
        }
        for (name, grad) in program.params.iter().zip(&o) {
            let (Some(p), Some(state)) = (self.params.get_mut(name), self.state.get_mut(name)) else {
                return Err(ExecError::MissingParameter(name.clone()));
            };
            optimizer::step(&be, &self.config, lr, p, grad, state, &self.guard)?;
        }
        self.close_step(loss, correct, weight, step)
    }

    /// The end of every step: the guard closes it, its loss (times `weight` rows) and right
    /// answers join the epoch's sums, and its loss is the last one.
    pub(super) fn close_step(
        &mut self,
        loss: DeviceTensor,
        correct: DeviceTensor,
        weight: f32,
        step: u64,
    ) -> Result<(), ExecError> {
        let be = &self.be;
        self.guard.close_step(be, &loss, step)?;
        ops_launch::accumulate(be, &mut self.loss_sum, &loss, weight)?;
        ops_launch::accumulate(be, &mut self.correct_sum, &correct, 1.0)?;
        // Into a buffer of the model's own: the step's own buffers are the step's (a
        // captured step's are its graph's).
        let last = self.last_loss.0.slice_mut();
        be.stream().memcpy_dtod(loss.slice(), last).map_err(super::driver_err)?;
        self.last_loss.1 = true;
        Ok(())
    }

    /// This rank's part of a data-parallel step: its outputs with every gradient, the loss
    /// and the right answers summed over the ranks, each gradient's sum started as backward
    /// makes it final. A rank with no rows starts its zeros' sums in the same order.
    pub(super) fn run_shard(
        &self,
        program: &Program,
        batch: Batch,
        ctx: &RunContext,
        group: &Group,
        share: StepShare,
    ) -> Result<Vec<DeviceTensor>, ExecError> {
        let be = self.be.as_ref();
        let mut o = if batch.is_empty() {
            let mut o = self.nothing_to_add(program)?;
            let gradients = 1..=program.params.len();
            for k in exec::output_ready_points(program.graph, program.schedule)
                .into_iter()
                .flatten()
            {
                if gradients.contains(&k) {
                    data_parallel::start_mean(be, group, share, &mut o[k])?;
                }
            }
            o
        } else {
            let inputs = self.inputs(program, batch)?;
            let mut listening = data_parallel::Overlapping {
                params: &self.params,
                be,
                group,
                share,
                gradients: program.params.len(),
            };
            exec::run_updating(be, program.graph, program.schedule, &mut listening, inputs, ctx)?.outputs
        };
        data_parallel::finish(be, group, share, &mut o)?;
        Ok(o)
    }

    /// A rank's outputs for a step it has no rows of: loss 0, zero gradients, 0 right.
    pub(super) fn nothing_to_add(&self, program: &Program) -> Result<Vec<DeviceTensor>, ExecError> {
        let zero = |shape: &crate::tensor::Shape| -> Result<DeviceTensor, ExecError> {
            let mut t = self.be.alloc(shape, Category::Temporaries)?;
            ops_launch::zero(&self.be, &mut t)?;
            Ok(t)
        };
        let scalar = crate::tensor::Shape::new(&[]);
        let mut out = vec![zero(&scalar)?];
        for name in program.params {
            let p = self
                .params
                .get(name)
                .ok_or_else(|| ExecError::MissingParameter(name.clone()))?;
            out.push(zero(&p.shape)?);
        }
        out.push(zero(&scalar)?);
        Ok(out)
    }
}
