//! The executor walks a [`Schedule`] on the CPU backend: bind inputs, run each op's
//! kernel into a counted buffer, free what the schedule frees. No decisions happen here.

use crate::graph::{Graph, Leaf, NodeId};
use crate::memory::{Category, MemoryError, MemoryTracker, Ticket};
use crate::ops::{self, Op, RunContext};
use crate::schedule::{Instr, Schedule};
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
    pub fn new(
        tracker: &Arc<MemoryTracker>,
        category: Category,
        data: ArrayD<T>,
    ) -> Result<Self, MemoryError> {
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
    InputShape {
        name: String,
        expected: Shape,
        got: Shape,
    },
    #[error("no parameter named '{0}' in the session")]
    MissingParameter(String),
    #[error("parameter '{name}' has shape {got}, the graph expects {expected}")]
    ParameterShape {
        name: String,
        expected: Shape,
        got: Shape,
    },
    #[error("the graph computes in {graph}, the session in {session}")]
    DType { graph: DType, session: DType },
    #[error(transparent)]
    Memory(#[from] MemoryError),
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

/// What one run produced: the outputs in schedule order and how many ops ran.
pub struct RunOutput<T> {
    pub outputs: Vec<Buffer<T>>,
    pub ops_run: usize,
}

/// Runs `schedule` with `inputs` bound by name. Every input leaf the schedule computes
/// must be bound, with the shape the graph was traced with.
pub fn run<T: Element>(
    graph: &Graph,
    schedule: &Schedule,
    session: &Session<T>,
    inputs: Vec<(&str, ArrayD<T>)>,
    ctx: &RunContext,
) -> Result<RunOutput<T>, ExecError> {
    if graph.dtype() != T::DTYPE {
        return Err(ExecError::DType {
            graph: graph.dtype(),
            session: T::DTYPE,
        });
    }
    let mut bound: HashMap<&str, ArrayD<T>> = inputs.into_iter().collect();
    let mut slots: Vec<Option<Buffer<T>>> = (0..graph.len()).map(|_| None).collect();
    let mut ops_run = 0;
    for instr in &schedule.instrs {
        match *instr {
            Instr::Compute(id) => {
                let node = graph.node(id);
                let data = match &node.op {
                    Op::Leaf(Leaf::Input { name }) => {
                        let a = bound
                            .remove(name.as_str())
                            .ok_or_else(|| ExecError::MissingInput(name.clone()))?;
                        if a.shape() != node.shape.dims() {
                            return Err(ExecError::InputShape {
                                name: name.clone(),
                                expected: node.shape.clone(),
                                got: Shape::new(a.shape()),
                            });
                        }
                        a
                    }
                    Op::Leaf(Leaf::Constant { value }) => ops::constant_cpu(value, &node.shape),
                    Op::Leaf(Leaf::Parameter { .. }) => {
                        unreachable!("parameters are not scheduled")
                    }
                    op => {
                        let args = node
                            .inputs
                            .iter()
                            .map(|&x| read(graph, &slots, session, x))
                            .collect::<Result<Vec<_>, _>>()?;
                        ops_run += 1;
                        ops::forward_cpu(op, &args, &node.shape, ctx)
                    }
                };
                slots[id.0] = Some(Buffer::new(
                    session.tracker(),
                    schedule.category[id.0],
                    data,
                )?);
            }
            Instr::Free(id) => slots[id.0] = None,
        }
    }
    let mut outputs = Vec::with_capacity(schedule.outputs.len());
    for (k, &o) in schedule.outputs.iter().enumerate() {
        // An output named again later, or a parameter itself, is handed out as a counted copy.
        let repeated = schedule.outputs[k + 1..].contains(&o);
        let buf = match slots[o.0].take() {
            Some(b) if !repeated => b,
            taken => {
                slots[o.0] = taken;
                let data = read(graph, &slots, session, o)?.clone();
                Buffer::new(session.tracker(), schedule.category[o.0], data)?
            }
        };
        outputs.push(buf);
    }
    Ok(RunOutput { outputs, ops_run })
}

fn read<'a, T: Element>(
    graph: &Graph,
    slots: &'a [Option<Buffer<T>>],
    session: &'a Session<T>,
    id: NodeId,
) -> Result<&'a ArrayD<T>, ExecError> {
    let node = graph.node(id);
    if let Op::Leaf(Leaf::Parameter { name }) = &node.op {
        let p = session
            .param(name)
            .ok_or_else(|| ExecError::MissingParameter(name.clone()))?;
        if p.shape() != node.shape.dims() {
            return Err(ExecError::ParameterShape {
                name: name.clone(),
                expected: node.shape.clone(),
                got: Shape::new(p.shape()),
            });
        }
        return Ok(p);
    }
    Ok(&slots[id.0]
        .as_ref()
        .expect("the schedule computes every node before its readers")
        .data)
}
