//! The graph IR: nodes in topological order, each an [`Op`] with its input ids and the
//! shape of the one tensor it produces. A node's id is also its output tensor's id.

use crate::ops::{self, Op};
use crate::tensor::{DType, Shape};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(pub usize);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// Leaves are the graph's sources. Inputs are bound with fresh data every step,
/// parameters persist across steps (looked up by name), constants are part of the graph.
#[derive(Clone, PartialEq, Debug)]
pub enum Leaf {
    Input { name: String },
    Parameter { name: String },
    Constant { value: ConstValue },
}

#[derive(Clone, PartialEq, Debug)]
pub enum ConstValue {
    /// Every element equals this value (seeds of backward, zero gradients).
    Fill(f64),
    /// Explicit values, row-major.
    Data(Vec<f64>),
}

/// Which pass recorded a node: the planner and the memory report care.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Forward,
    Backward,
    Tangent,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Shape,
    pub dtype: DType,
    pub phase: Phase,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GraphError {
    #[error("shape mismatch in {op}: {lhs} and {rhs} ({why})")]
    ShapeMismatch {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
        why: String,
    },
    #[error("bad shape for {op}: {shape} ({why})")]
    BadShape {
        op: &'static str,
        shape: Shape,
        why: String,
    },
    #[error("{op} takes {expected} inputs, got {got}")]
    Arity {
        op: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{0}")]
    Invalid(String),
}

/// A traced computation. Nodes are only ever appended, so insertion order is a
/// topological order.
#[derive(Clone, Debug)]
pub struct Graph {
    nodes: Vec<Node>,
    dtype: DType,
    phase: Phase,
}

impl Graph {
    pub fn new(dtype: DType) -> Self {
        Graph {
            nodes: Vec::new(),
            dtype,
            phase: Phase::Forward,
        }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.nodes[id.0].shape
    }
    /// Bytes of the tensor a node produces.
    pub fn bytes(&self, id: NodeId) -> u64 {
        let n = &self.nodes[id.0];
        (n.shape.numel() * n.dtype.size_bytes()) as u64
    }

    /// Nodes appended from now on are tagged with `phase`.
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    pub fn input(&mut self, name: &str, shape: impl Into<Shape>) -> NodeId {
        self.leaf(Leaf::Input { name: name.to_string() }, shape.into())
    }

    pub fn parameter(&mut self, name: &str, shape: impl Into<Shape>) -> NodeId {
        self.leaf(Leaf::Parameter { name: name.to_string() }, shape.into())
    }

    pub fn fill(&mut self, value: f64, shape: impl Into<Shape>) -> NodeId {
        self.leaf(
            Leaf::Constant {
                value: ConstValue::Fill(value),
            },
            shape.into(),
        )
    }

    pub fn constant(&mut self, values: Vec<f64>, shape: impl Into<Shape>) -> Result<NodeId, GraphError> {
        let shape = shape.into();
        if values.len() != shape.numel() {
            return Err(GraphError::BadShape {
                op: "constant",
                shape,
                why: format!("{} values given", values.len()),
            });
        }
        Ok(self.leaf(
            Leaf::Constant {
                value: ConstValue::Data(values),
            },
            shape,
        ))
    }

    fn leaf(&mut self, leaf: Leaf, shape: Shape) -> NodeId {
        self.append(Op::Leaf(leaf), Vec::new(), shape)
    }

    /// Appends an op after checking its inputs' shapes.
    pub fn push(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId, GraphError> {
        let shapes: Vec<&Shape> = inputs.iter().map(|&i| self.shape(i)).collect();
        let shape = ops::infer_shape(&op, &shapes)?;
        Ok(self.append(op, inputs.to_vec(), shape))
    }

    fn append(&mut self, op: Op, inputs: Vec<NodeId>, shape: Shape) -> NodeId {
        let id = NodeId(self.nodes.len());
        self.nodes.push(Node {
            op,
            inputs,
            shape,
            dtype: self.dtype,
            phase: self.phase,
        });
        id
    }

    /// The id a dropout node appended next would get: its mask key.
    pub fn next_id(&self) -> NodeId {
        NodeId(self.nodes.len())
    }

    /// Every parameter leaf, with its name.
    pub fn parameters(&self) -> Vec<(NodeId, &str)> {
        self.leaves(|l| match l {
            Leaf::Parameter { name } => Some(name.as_str()),
            _ => None,
        })
    }

    /// Every input leaf, with its name.
    pub fn inputs(&self) -> Vec<(NodeId, &str)> {
        self.leaves(|l| match l {
            Leaf::Input { name } => Some(name.as_str()),
            _ => None,
        })
    }

    fn leaves<'a>(&'a self, pick: impl Fn(&'a Leaf) -> Option<&'a str>) -> Vec<(NodeId, &'a str)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.op {
                Op::Leaf(l) => pick(l).map(|name| (NodeId(i), name)),
                _ => None,
            })
            .collect()
    }

    /// Consumers of every node, in graph order.
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &inp in &n.inputs {
                if !out[inp.0].contains(&NodeId(i)) {
                    out[inp.0].push(NodeId(i));
                }
            }
        }
        out
    }

    /// Marks every node some output depends on.
    pub fn ancestors(&self, outputs: &[NodeId]) -> Vec<bool> {
        let mut needed = vec![false; self.nodes.len()];
        for &o in outputs {
            needed[o.0] = true;
        }
        for i in (0..self.nodes.len()).rev() {
            if needed[i] {
                for &inp in &self.nodes[i].inputs {
                    needed[inp.0] = true;
                }
            }
        }
        needed
    }
}
