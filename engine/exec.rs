//! The executor walks a [`Schedule`] on the CPU backend: bind inputs, run each op's
//! kernel into a counted buffer, free what the schedule frees. No decisions happen here.

use crate::graph::{ConstValue, Graph, Leaf, NodeId};
use crate::memory::{Category, MemoryError, MemoryTracker, Ticket};
use crate::ops::{self, Op, RunContext};
use crate::plan::{Instr, Schedule};
use crate::tensor::{DType, Element, Shape};
use ndarray::ArrayD;
use std::collections::HashMap;
use std::sync::Arc;

/// An array whose bytes are counted by a [`MemoryTracker`] while it lives.
#[derive(Debug)]
pub struct Buffer<T> {
    pub data: ArrayD<T>,
    ticket: Ticket,
}

impl<T: Element> Buffer<T> {
    pub fn new(tracker: &Arc<MemoryTracker>, category: Category, data: ArrayD<T>) -> Result<Self, MemoryError> {
        let bytes = (data.len() * std::mem::size_of::<T>()) as u64;
        let ticket = tracker.allocate(category, bytes)?;
        Ok(Buffer { data, ticket })
    }
    pub fn category(&self) -> Category {
        self.ticket.category()
    }
    /// The single value of a scalar (or the first element).
    pub fn scalar(&self) -> T {
        self.data.iter().next().copied().unwrap_or(T::nan())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no data bound for input '{0}'")]
    MissingInput(String),
    #[error("input '{name}' bound with shape {got}, the graph expects {expected}")]
    InputShape { name: String, expected: Shape, got: Shape },
    #[error("no parameter named '{0}' in the session")]
    MissingParameter(String),
    #[error("parameter '{name}' has shape {got}, the graph expects {expected}")]
    ParameterShape { name: String, expected: Shape, got: Shape },
    #[error("the graph computes in {graph}, the session in {session}")]
    DType { graph: DType, session: DType },
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("{0}")]
    Device(String),
}

/// State that outlives a step: parameters (by name) and the tracker that counts every buffer.
pub struct Session<T> {
    tracker: Arc<MemoryTracker>,
    params: HashMap<String, Buffer<T>>,
}

impl<T: Element> Session<T> {
    pub fn new(tracker: Arc<MemoryTracker>) -> Self {
        Session {
            tracker,
            params: HashMap::new(),
        }
    }
    pub fn tracker(&self) -> &Arc<MemoryTracker> {
        &self.tracker
    }
    pub fn set_param(&mut self, name: &str, data: ArrayD<T>) -> Result<(), MemoryError> {
        self.params.remove(name);
        let buf = Buffer::new(&self.tracker, Category::Parameters, data)?;
        self.params.insert(name.to_string(), buf);
        Ok(())
    }
    pub fn param(&self, name: &str) -> Option<&ArrayD<T>> {
        self.params.get(name).map(|b| &b.data)
    }
    pub fn param_mut(&mut self, name: &str) -> Option<&mut ArrayD<T>> {
        self.params.get_mut(name).map(|b| &mut b.data)
    }
    /// Allocates a counted buffer (optimizer state, staging) from this session's tracker.
    pub fn allocate(&self, category: Category, data: ArrayD<T>) -> Result<Buffer<T>, MemoryError> {
        Buffer::new(&self.tracker, category, data)
    }
}

/// What one run produced: the outputs in schedule order.
pub struct RunOutput<X> {
    pub outputs: Vec<X>,
}

/// A place where a schedule's tensors live and its ops run: the CPU here, the GPU in
/// [`crate::backend::cuda`]. The executor below is written once against this trait.
pub trait Backend {
    type Tensor;
    /// Data bound to an input leaf.
    type Input;
    fn input_shape(input: &Self::Input) -> &[usize];
    fn tensor_shape(t: &Self::Tensor) -> &[usize];
    /// Takes bound data into a tensor counted under `category`.
    fn bind(&self, input: Self::Input, category: Category) -> Result<Self::Tensor, ExecError>;
    fn constant(&self, value: &ConstValue, shape: &Shape, category: Category) -> Result<Self::Tensor, ExecError>;
    /// Runs a non-leaf op into a new tensor.
    fn compute(
        &self,
        op: &Op,
        inputs: &[&Self::Tensor],
        shape: &Shape,
        ctx: &RunContext,
        category: Category,
    ) -> Result<Self::Tensor, ExecError>;
    fn duplicate(&self, t: &Self::Tensor, category: Category) -> Result<Self::Tensor, ExecError>;
    /// A fused Linear layer (see [`crate::plan::fusion`]): `relu?(x·op(w) + bias)` into one new
    /// tensor, storing nothing else.
    fn linear(
        &self,
        layer: LinearLayer,
        inputs: [&Self::Tensor; 3],
        shape: &Shape,
        category: Category,
    ) -> Result<Self::Tensor, ExecError>;
}

/// The shape of a fused Linear layer's computation; its inputs are `[x, w, bias]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LinearLayer {
    pub trans_a: bool,
    pub trans_b: bool,
    pub relu: bool,
}

/// Parameters by name, wherever they live.
pub trait Parameters<X> {
    fn get_param(&self, name: &str) -> Option<&X>;
}

impl<X> Parameters<X> for HashMap<String, X> {
    fn get_param(&self, name: &str) -> Option<&X> {
        self.get(name)
    }
}

impl<T: Element> Parameters<Buffer<T>> for Session<T> {
    fn get_param(&self, name: &str) -> Option<&Buffer<T>> {
        self.params.get(name)
    }
}

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
        let mut y = crate::ops::matmul::forward(&x.data, &w.data, layer.trans_a, layer.trans_b);
        crate::backend::cpu::add_bias_in_place(&mut y, &bias.data, layer.relu);
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
    run_on(
        &Cpu::new(session.tracker().clone()),
        graph,
        schedule,
        session,
        inputs,
        ctx,
    )
}

/// Runs `schedule` on any backend.
pub fn run_on<B: Backend>(
    backend: &B,
    graph: &Graph,
    schedule: &Schedule,
    params: &impl Parameters<B::Tensor>,
    inputs: Vec<(&str, B::Input)>,
    ctx: &RunContext,
) -> Result<RunOutput<B::Tensor>, ExecError> {
    let mut bound: HashMap<&str, B::Input> = inputs.into_iter().collect();
    let mut slots: Vec<Option<B::Tensor>> = (0..graph.len()).map(|_| None).collect();
    for (instr, &category) in schedule.instrs.iter().zip(&schedule.category) {
        match *instr {
            Instr::Compute(id) | Instr::Recompute(id) => {
                let node = graph.node(id);
                let tensor = match &node.op {
                    Op::Leaf(Leaf::Input { name }) => {
                        let a = bound
                            .remove(name.as_str())
                            .ok_or_else(|| ExecError::MissingInput(name.clone()))?;
                        if B::input_shape(&a) != node.shape.dims() {
                            return Err(ExecError::InputShape {
                                name: name.clone(),
                                expected: node.shape.clone(),
                                got: Shape::new(B::input_shape(&a)),
                            });
                        }
                        backend.bind(a, category)?
                    }
                    Op::Leaf(Leaf::Constant { value }) => backend.constant(value, &node.shape, category)?,
                    Op::Leaf(Leaf::Parameter { .. }) => {
                        unreachable!("parameters are not scheduled")
                    }
                    op => {
                        let args = node
                            .inputs
                            .iter()
                            .map(|&x| read::<B>(graph, &slots, params, x))
                            .collect::<Result<Vec<_>, _>>()?;
                        backend.compute(op, &args, &node.shape, ctx, category)?
                    }
                };
                slots[id.0] = Some(tensor);
            }
            Instr::Free(id) => slots[id.0] = None,
            Instr::Linear {
                matmul, bias_add, act, ..
            } => {
                let (mm, add) = (graph.node(matmul), graph.node(bias_add));
                let Op::MatMul { trans_a, trans_b } = mm.op else {
                    unreachable!("fusion starts at a matrix product")
                };
                let layer = LinearLayer {
                    trans_a,
                    trans_b,
                    relu: act.is_some(),
                };
                let x = read::<B>(graph, &slots, params, mm.inputs[0])?;
                let w = read::<B>(graph, &slots, params, mm.inputs[1])?;
                let bias = read::<B>(graph, &slots, params, add.inputs[1])?;
                let out = act.unwrap_or(bias_add);
                let t = backend.linear(layer, [x, w, bias], &graph.node(out).shape, category)?;
                slots[out.0] = Some(t);
            }
        }
    }
    let mut outputs = Vec::with_capacity(schedule.outputs.len());
    for (k, &o) in schedule.outputs.iter().enumerate() {
        // An output named again later, or a parameter itself, is handed out as a counted copy.
        let repeated = schedule.outputs[k + 1..].contains(&o);
        let t = match slots[o.0].take() {
            Some(t) if !repeated => t,
            taken => {
                slots[o.0] = taken;
                backend.duplicate(read::<B>(graph, &slots, params, o)?, Category::Temporaries)?
            }
        };
        outputs.push(t);
    }
    Ok(RunOutput { outputs })
}

fn read<'a, B: Backend>(
    graph: &Graph,
    slots: &'a [Option<B::Tensor>],
    params: &'a impl Parameters<B::Tensor>,
    id: NodeId,
) -> Result<&'a B::Tensor, ExecError> {
    let node = graph.node(id);
    if let Op::Leaf(Leaf::Parameter { name }) = &node.op {
        let p = params
            .get_param(name)
            .ok_or_else(|| ExecError::MissingParameter(name.clone()))?;
        if B::tensor_shape(p) != node.shape.dims() {
            return Err(ExecError::ParameterShape {
                name: name.clone(),
                expected: node.shape.clone(),
                got: Shape::new(B::tensor_shape(p)),
            });
        }
        return Ok(p);
    }
    Ok(slots[id.0]
        .as_ref()
        .expect("the schedule computes every node before its readers"))
}
