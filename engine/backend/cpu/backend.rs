//! The CPU backend of the executor: each op's CPU rule (ops/) into a counted buffer.

use super::{Buffer, Session};
use crate::exec::{self, Backend, ExecError, LinearLayer, RunOutput};
use crate::graph::{ConstValue, Graph};
use crate::memory::{Category, MemoryTracker};
use crate::ops::{self, Op, RunContext};
use crate::plan::Schedule;
use crate::tensor::{Element, Shape};
use ndarray::ArrayD;
use std::sync::Arc;

/// The CPU backend: ndarray arrays counted by the session's tracker.
pub struct Cpu<T> {
    tracker: Arc<MemoryTracker>,
    _element: std::marker::PhantomData<T>,
}

impl<T: Element> Cpu<T> {
    pub fn new(tracker: Arc<MemoryTracker>) -> Self {
        Cpu {
            tracker,
            _element: std::marker::PhantomData,
        }
    }
}

impl<T: Element> Backend for Cpu<T> {
    type Tensor = Buffer<T>;
    type Input = ArrayD<T>;
    fn input_shape(input: &ArrayD<T>) -> &[usize] {
        input.shape()
    }
    fn tensor_shape(t: &Buffer<T>) -> &[usize] {
        t.data.shape()
    }
    fn bind(&self, input: ArrayD<T>, category: Category) -> Result<Buffer<T>, ExecError> {
        Ok(Buffer::new(&self.tracker, category, input)?)
    }
    fn constant(&self, value: &ConstValue, shape: &Shape, category: Category) -> Result<Buffer<T>, ExecError> {
        Ok(Buffer::new(&self.tracker, category, ops::constant_cpu(value, shape))?)
    }
    fn compute(
        &self,
        op: &Op,
        inputs: &[&Buffer<T>],
        shape: &Shape,
        ctx: &RunContext,
        category: Category,
    ) -> Result<Buffer<T>, ExecError> {
        let args: Vec<&ArrayD<T>> = inputs.iter().map(|b| &b.data).collect();
        Ok(Buffer::new(
            &self.tracker,
            category,
            ops::forward_cpu(op, &args, shape, ctx),
        )?)
    }
    fn duplicate(&self, t: &Buffer<T>, category: Category) -> Result<Buffer<T>, ExecError> {
        Ok(Buffer::new(&self.tracker, category, t.data.clone())?)
    }
    fn linear(
        &self,
        layer: LinearLayer,
        [x, w, bias]: [&Buffer<T>; 3],
        _shape: &Shape,
        category: Category,
    ) -> Result<Buffer<T>, ExecError> {
        let mut y = ops::matmul::forward(&x.data, &w.data, layer.trans_a, layer.trans_b);
        ops::cpu_map::add_bias_in_place(&mut y, &bias.data, layer.relu);
        Ok(Buffer::new(&self.tracker, category, y)?)
    }
}

/// Runs `schedule` on the CPU with `inputs` bound by name. Every input leaf the schedule
/// computes must be bound, with the shape the graph was traced with.
pub fn run<T: Element>(
    graph: &Graph,
    schedule: &Schedule,
    session: &Session<T>,
    inputs: Vec<(&str, ArrayD<T>)>,
    ctx: &RunContext,
) -> Result<RunOutput<Buffer<T>>, ExecError> {
    if graph.dtype() != T::DTYPE {
        return Err(ExecError::DType {
            graph: graph.dtype(),
            session: T::DTYPE,
        });
    }
    exec::run_on(
        &Cpu::new(session.tracker().clone()),
        graph,
        schedule,
        session,
        inputs,
        ctx,
    )
}
