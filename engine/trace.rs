//! Define-by-run tracing: user code runs a forward pass on [`Var`]s inside a [`Tracer`]
//! scope and every primitive op is recorded into a [`Graph`]. Data is bound later, so
//! one trace serves every step.

use crate::graph::{Graph, GraphError, NodeId};
use crate::ops::{Activation, Norm, Op};
use crate::tensor::{DType, Shape};
use std::cell::RefCell;

/// A recording scope. Make leaves with [`Tracer::input`] and [`Tracer::parameter`], run
/// the model on them, then take the graph with [`Tracer::finish`].
///
/// A scope traces a training step or an evaluation ([`Tracer::evaluating`]); the layers
/// that differ between the two (BatchNorm) ask [`Tracer::training`]. In training such a
/// layer also records its buffers' next values ([`Tracer::update_buffer`]), which the step
/// hands out beside its gradients for the device to keep.
pub struct Tracer {
    graph: RefCell<Graph>,
    training: bool,
    buffer_updates: RefCell<Vec<(String, NodeId)>>,
}

/// A traced tensor: a handle to a node of the graph being recorded.
#[derive(Clone, Copy)]
pub struct Var<'t> {
    pub id: NodeId,
    tracer: &'t Tracer,
}

impl std::fmt::Debug for Var<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({}, {})", self.id, self.shape())
    }
}

impl Tracer {
    /// A scope that traces a training step.
    pub fn new(dtype: DType) -> Self {
        Tracer {
            graph: RefCell::new(Graph::new(dtype)),
            training: true,
            buffer_updates: RefCell::new(Vec::new()),
        }
    }

    /// A scope that traces evaluation (BatchNorm reads its running statistics).
    pub fn evaluating(dtype: DType) -> Self {
        Tracer {
            training: false,
            ..Tracer::new(dtype)
        }
    }

    pub fn training(&self) -> bool {
        self.training
    }

    /// Records `value` as buffer `name`'s value after this step (a BatchNorm's running
    /// statistics): a device keeps it once the step has run, whatever the step recomputed.
    pub fn update_buffer(&self, name: &str, value: &Var<'_>) {
        self.buffer_updates.borrow_mut().push((name.to_string(), value.id));
    }

    fn var(&self, id: NodeId) -> Var<'_> {
        Var { id, tracer: self }
    }

    /// A tensor bound with fresh data each step.
    pub fn input(&self, name: &str, shape: impl Into<Shape>) -> Var<'_> {
        let id = self.graph.borrow_mut().input(name, shape);
        self.var(id)
    }

    /// A tensor that persists across steps, looked up by name when the graph runs.
    pub fn parameter(&self, name: &str, shape: impl Into<Shape>) -> Var<'_> {
        let id = self.graph.borrow_mut().parameter(name, shape);
        self.var(id)
    }

    /// A constant tensor with the given values (row-major).
    pub fn constant(&self, values: Vec<f64>, shape: impl Into<Shape>) -> Result<Var<'_>, GraphError> {
        let id = self.graph.borrow_mut().constant(values, shape)?;
        Ok(self.var(id))
    }

    /// Ends the scope.
    pub fn finish(self) -> Graph {
        self.graph.into_inner()
    }

    /// Ends the scope: the graph and each updated buffer's name and next value, in the order
    /// they were recorded.
    pub fn finish_with_updates(self) -> (Graph, Vec<(String, NodeId)>) {
        (self.graph.into_inner(), self.buffer_updates.into_inner())
    }

    fn push(&self, op: Op, inputs: &[NodeId]) -> Result<Var<'_>, GraphError> {
        let id = self.graph.borrow_mut().push(op, inputs)?;
        Ok(self.var(id))
    }
}

impl<'t> Var<'t> {
    pub fn shape(&self) -> Shape {
        self.tracer.graph.borrow().shape(self.id).clone()
    }

    fn unary(&self, op: Op) -> Result<Var<'t>, GraphError> {
        self.tracer.push(op, &[self.id])
    }
    fn binary(&self, op: Op, other: &Var<'t>) -> Result<Var<'t>, GraphError> {
        self.tracer.push(op, &[self.id, other.id])
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Var<'t>) -> Result<Var<'t>, GraphError> {
        self.matmul_t(other, false, false)
    }
    /// `op(self) · op(other)`, transposing each side when asked.
    pub fn matmul_t(&self, other: &Var<'t>, trans_a: bool, trans_b: bool) -> Result<Var<'t>, GraphError> {
        self.binary(Op::MatMul { trans_a, trans_b }, other)
    }
    pub fn add(&self, other: &Var<'t>) -> Result<Var<'t>, GraphError> {
        self.binary(Op::Add, other)
    }
    pub fn sub(&self, other: &Var<'t>) -> Result<Var<'t>, GraphError> {
        self.binary(Op::Sub, other)
    }
    pub fn mul(&self, other: &Var<'t>) -> Result<Var<'t>, GraphError> {
        self.binary(Op::Mul, other)
    }
    pub fn scale(&self, s: f64) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Scale(s))
    }
    pub fn neg(&self) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Neg)
    }
    pub fn sum(&self) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Sum { axis: None })
    }
    pub fn sum_axis(&self, axis: usize) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Sum { axis: Some(axis) })
    }
    pub fn mean(&self) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Mean { axis: None })
    }
    pub fn mean_axis(&self, axis: usize) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Mean { axis: Some(axis) })
    }
    pub fn activation(&self, a: Activation) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Unary(a))
    }
    pub fn relu(&self) -> Result<Var<'t>, GraphError> {
        self.activation(Activation::Relu)
    }
    pub fn leaky_relu(&self, slope: f64) -> Result<Var<'t>, GraphError> {
        self.activation(Activation::LeakyRelu(slope))
    }
    pub fn gelu(&self) -> Result<Var<'t>, GraphError> {
        self.activation(Activation::Gelu)
    }
    pub fn sigmoid(&self) -> Result<Var<'t>, GraphError> {
        self.activation(Activation::Sigmoid)
    }
    pub fn tanh(&self) -> Result<Var<'t>, GraphError> {
        self.activation(Activation::Tanh)
    }
    pub fn exp(&self) -> Result<Var<'t>, GraphError> {
        self.activation(Activation::Exp)
    }
    pub fn log(&self) -> Result<Var<'t>, GraphError> {
        self.activation(Activation::Log)
    }
    /// Inverted dropout with drop probability `p` in [0, 1). Its mask is keyed by this
    /// node's id, so every replay of the node (backward, recomputation) sees the same mask.
    pub fn dropout(&self, p: f64) -> Result<Var<'t>, GraphError> {
        if !(0.0..1.0).contains(&p) {
            return Err(GraphError::Invalid(format!(
                "dropout probability {p} is outside [0, 1)"
            )));
        }
        let key = self.tracer.graph.borrow().next_id().0 as u64;
        self.unary(Op::Dropout { p, key })
    }
    /// LayerNorm over the last axis (no affine parameters): `(x - mean) / sqrt(var + eps)`.
    pub fn layer_norm(&self, eps: f64) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Normalize { norm: Norm::Layer, eps })
    }
    /// RMSNorm over the last axis (no affine parameters): `x / sqrt(mean(x²) + eps)`.
    pub fn rms_norm(&self, eps: f64) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Normalize { norm: Norm::Rms, eps })
    }
    /// BatchNorm in training over the batch axis of `[batch, features]` (no affine
    /// parameters): each column by its batch mean and biased variance.
    pub fn batch_norm(&self, eps: f64) -> Result<Var<'t>, GraphError> {
        self.unary(Op::Normalize { norm: Norm::Batch, eps })
    }
    /// BatchNorm's evaluation form: each column by the statistics given (`[features]` each).
    pub fn standardize(&self, mean: &Var<'t>, var: &Var<'t>, eps: f64) -> Result<Var<'t>, GraphError> {
        self.tracer.push(Op::Standardize { eps }, &[self.id, mean.id, var.id])
    }
    /// Mean softmax cross-entropy of logits `[batch, classes]` against labels `[batch]`.
    pub fn softmax_cross_entropy(&self, labels: &Var<'t>) -> Result<Var<'t>, GraphError> {
        self.binary(Op::SoftmaxCrossEntropy, labels)
    }
    /// How many rows of these logits predict their label (a metric; not differentiable).
    pub fn count_correct(&self, labels: &Var<'t>) -> Result<Var<'t>, GraphError> {
        self.binary(Op::CountCorrect, labels)
    }
    pub fn mse(&self, target: &Var<'t>) -> Result<Var<'t>, GraphError> {
        self.binary(Op::MeanSquaredError, target)
    }
    pub fn inner(&self, other: &Var<'t>) -> Result<Var<'t>, GraphError> {
        self.binary(Op::Inner, other)
    }
    pub fn squared_norm(&self) -> Result<Var<'t>, GraphError> {
        self.unary(Op::SquaredNorm)
    }
}
