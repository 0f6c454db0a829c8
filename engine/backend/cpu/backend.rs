//! The CPU backend of the executor: each op's CPU rule (ops/) into a counted buffer.

use super::fp8_rounding::quantized;
use super::rounding::{round_in_place, rounded};
use super::{Buffer, Session};
use crate::backend::Precision;
use crate::exec::{self, Backend, ExecError, LinearLayer, Out, RunOutput};
use crate::graph::{ConstValue, Graph};
use crate::memory::{Category, MemoryTracker};
use crate::ops::{self, Op, RunContext};
use crate::plan::{Schedule, Storage};
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

    /// The operands a matrix product multiplies: an f32 operand of a low-precision product
    /// is a rounded copy, counted as a temporary while the product runs (as the GPU counts
    /// its 16-bit copy); an operand stored in 16 bits is read as it is. In an FP8 step, a
    /// product `out.fp8` names copies both operands, rounded to their FP8 formats.
    fn product_operands(&self, [a, b]: [&Buffer<T>; 2], out: &Out) -> Result<[Option<Buffer<T>>; 2], ExecError> {
        let copy = |data| Buffer::new(&self.tracker, Category::Temporaries, data).map(Some);
        match (self.precision, out.fp8) {
            (Precision::F32, _) => Ok([None, None]),
            (Precision::Fp8, Some([fa, fb])) => Ok([copy(quantized(&a.data, fa))?, copy(quantized(&b.data, fb))?]),
            _ => {
                let rounded_copy = |x: &Buffer<T>| match x.storage {
                    Storage::Half => Ok(None),
                    Storage::F32 => copy(rounded(&x.data, self.precision)),
                };
                Ok([rounded_copy(a)?, rounded_copy(b)?])
            }
        }
    }

    /// `data` stored as `out` says: a 16-bit tensor's values rounded, as the GPU stores them.
    fn stored(&self, mut data: ArrayD<T>, out: Out) -> Result<Buffer<T>, ExecError> {
        if out.storage == Storage::Half {
            round_in_place(&mut data, self.precision);
        }
        let mut b = Buffer::new(&self.tracker, out.category, data)?;
        b.storage = out.storage;
        Ok(b)
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
    fn bind(&self, input: ArrayD<T>, category: Category, storage: Storage) -> Result<Buffer<T>, ExecError> {
        let shape = Shape::new(input.shape());
        self.stored(
            input,
            Out {
                shape: &shape,
                category,
                storage,
                fp8: None,
            },
        )
    }
    fn constant(&self, value: &ConstValue, shape: &Shape, category: Category) -> Result<Buffer<T>, ExecError> {
        Ok(Buffer::new(&self.tracker, category, ops::constant_cpu(value, shape))?)
    }
    fn compute(&self, op: &Op, inputs: &[&Buffer<T>], out: Out, ctx: &RunContext) -> Result<Buffer<T>, ExecError> {
        let copies = match op {
            Op::MatMul { .. } => self.product_operands([inputs[0], inputs[1]], &out)?,
            _ => [None, None],
        };
        let args: Vec<&ArrayD<T>> = inputs
            .iter()
            .enumerate()
            .map(|(k, b)| copies.get(k).and_then(Option::as_ref).map_or(&b.data, |c| &c.data))
            .collect();
        let data = ops::forward_cpu(op, &args, out.shape, ctx);
        self.stored(data, out)
    }
    fn duplicate(&self, t: &Buffer<T>, category: Category) -> Result<Buffer<T>, ExecError> {
        Ok(Buffer::new(&self.tracker, category, t.data.clone())?)
    }
    fn linear(&self, layer: LinearLayer, [x, w, bias]: [&Buffer<T>; 3], out: Out) -> Result<Buffer<T>, ExecError> {
        let [xc, wc] = self.product_operands([x, w], &out)?;
        let (x, w) = (xc.as_ref().unwrap_or(x), wc.as_ref().unwrap_or(w));
        let mut y = ops::matmul::forward(&x.data, &w.data, layer.trans_a, layer.trans_b);
        if out.storage == Storage::Half {
            round_in_place(&mut y, self.precision);
        }
        ops::cpu_map::add_bias_in_place(&mut y, &bias.data, layer.relu);
        self.stored(y, out)
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
