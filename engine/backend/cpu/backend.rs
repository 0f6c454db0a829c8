//! The CPU backend of the executor: each op's CPU rule (ops/) into a counted buffer.

use super::rounding::rounded;
use super::{Buffer, Session};
use crate::backend::Precision;
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
    /// Matrix products' operands are rounded to this type first (see [`super::rounding`]).
    precision: Precision,
    _element: std::marker::PhantomData<T>,
}

impl<T: Element> Cpu<T> {
    pub fn new(tracker: Arc<MemoryTracker>) -> Self {
        Self::with_precision(tracker, Precision::F32)
    }

    pub fn with_precision(tracker: Arc<MemoryTracker>, precision: Precision) -> Self {
        Cpu {
            tracker,
            precision,
            _element: std::marker::PhantomData,
        }
    }

    /// The operands a matrix product multiplies: rounded copies, counted as temporaries
    /// while the product runs (as the GPU counts its 16-bit copies), or `None` in f32.
    fn product_operands(&self, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<Option<[Buffer<T>; 2]>, ExecError> {
        if self.precision == Precision::F32 {
            return Ok(None);
        }
        let copy = |x: &ArrayD<T>| Buffer::new(&self.tracker, Category::Temporaries, rounded(x, self.precision));
        Ok(Some([copy(a)?, copy(b)?]))
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
        let mut args: Vec<&ArrayD<T>> = inputs.iter().map(|b| &b.data).collect();
        let copies = match op {
            Op::MatMul { .. } => self.product_operands(args[0], args[1])?,
            _ => None,
        };
        if let Some([a, b]) = &copies {
            args = vec![&a.data, &b.data];
        }
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
        let copies = self.product_operands(&x.data, &w.data)?;
        let (x, w) = match &copies {
            Some([x, w]) => (&x.data, &w.data),
            None => (&x.data, &w.data),
        };
        let mut y = ops::matmul::forward(x, w, layer.trans_a, layer.trans_b);
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
    run_with(graph, schedule, session, inputs, ctx, Precision::F32)
}

/// [`run`] with matrix products on operands rounded to `precision`.
pub fn run_with<T: Element>(
    graph: &Graph,
    schedule: &Schedule,
    session: &Session<T>,
    inputs: Vec<(&str, ArrayD<T>)>,
    ctx: &RunContext,
    precision: Precision,
) -> Result<RunOutput<Buffer<T>>, ExecError> {
    if graph.dtype() != T::DTYPE {
        return Err(ExecError::DType {
            graph: graph.dtype(),
            session: T::DTYPE,
        });
    }
    exec::run_on(
        &Cpu::with_precision(session.tracker().clone(), precision),
        graph,
        schedule,
        session,
        inputs,
        ctx,
    )
}
