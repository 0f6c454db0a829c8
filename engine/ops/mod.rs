//! The closed set of primitive ops. Each op family lives in one file with its shape
//! rule, CPU forward kernel, vector-Jacobian product (as graph nodes), Jacobian-vector
//! product (as graph nodes), cost model and recompute class, and which GPU kernel (and
//! kernel code) runs it: kernels/<family>.cu, launched by backend/cuda/ops/<family>.rs.
//! This file only dispatches.

pub mod activation;
pub mod arith;
pub mod cpu_gemm;
pub mod cpu_map;
pub mod dropout;
pub mod inner;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod reduce;
pub mod standardize;

pub use activation::Activation;
pub use norm::Norm;

use crate::graph::{ConstValue, Graph, GraphError, Leaf, NodeId};
use crate::tensor::{Element, Shape};
use ndarray::ArrayD;

#[derive(Clone, PartialEq, Debug)]
pub enum Op {
    Leaf(Leaf),
    /// `op(a) · op(b)` of two matrices, where op transposes when asked.
    MatMul {
        trans_a: bool,
        trans_b: bool,
    },
    /// Elementwise with NumPy broadcasting (a bias `[n]` against `[batch, n]`).
    Add,
    Sub,
    Mul,
    Scale(f64),
    Neg,
    /// Sum over every element (`axis: None`, giving a scalar) or over one axis (removed).
    Sum {
        axis: Option<usize>,
    },
    Mean {
        axis: Option<usize>,
    },
    /// Inserts `axis` (if any) as a unit axis, then broadcasts to `shape`: the adjoint of a sum.
    Broadcast {
        axis: Option<usize>,
        shape: Shape,
    },
    /// Sums a broadcast tensor back down to `shape` (then drops `axis`, if any): the adjoint of a broadcast.
    SumTo {
        axis: Option<usize>,
        shape: Shape,
    },
    Unary(Activation),
    /// `g · f'(saved)`, where `saved` is the activation's input or output (see [`Activation::grad_from_output`]).
    UnaryGrad(Activation),
    /// Zeroes each element with probability `p` and scales the rest by `1/(1-p)`; the mask is a
    /// pure function of (seed, step, key, element), so replaying the node replays the mask.
    Dropout {
        p: f64,
        key: u64,
    },
    /// Mean over the batch of `-log softmax(logits)[label]`; inputs `[logits [B,C], labels [B]]`.
    SoftmaxCrossEntropy,
    /// `g · (softmax(logits) - onehot(labels)) / B`; inputs `[logits, labels, g]`.
    SoftmaxCrossEntropyGrad,
    /// How many rows' first largest logit is their label; inputs `[logits [B,C], labels [B]]`.
    /// A metric, not differentiable: only ever an output.
    CountCorrect,
    /// LayerNorm or RMSNorm over the last axis, before any affine parameters.
    Normalize {
        norm: Norm,
        eps: f64,
    },
    /// The normalization's (symmetric) Jacobian at `x` applied to `v`; inputs `[x, v]`.
    NormalizeGrad {
        norm: Norm,
        eps: f64,
    },
    /// BatchNorm's evaluation form: each column of `x` by running statistics given; inputs
    /// `[x, mean, var]`. Not differentiable: evaluation only.
    Standardize {
        eps: f64,
    },
    /// Mean of `(pred - target)²` over every element.
    MeanSquaredError,
    /// `Σ a·b` over every element.
    Inner,
    /// `Σ a²`.
    SquaredNorm,
}

/// Whether recomputing an op's output is worth it compared with keeping it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RecomputeClass {
    /// Memory-bound elementwise work: drop and recompute.
    Cheap,
    /// Compute-bound (matrix products, reductions over large inputs): keep.
    Expensive,
}

/// What running an op costs, known from shapes alone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cost {
    pub flops: u64,
    pub bytes_moved: u64,
    pub output_bytes: u64,
    pub recompute: RecomputeClass,
}

/// Per-step facts some kernels need.
#[derive(Clone, Copy, Debug)]
pub struct RunContext {
    pub seed: u64,
    pub step: u64,
    /// Dropout is the identity outside training.
    pub training: bool,
    /// The first row of this batch within the step's global batch: a data-parallel rank
    /// runs rows from there on, and dropout keys each element by its global row, so the
    /// ranks drop what one process running the whole batch would. 0 outside data parallelism.
    pub first_row: u64,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Leaf(Leaf::Input { .. }) => "input",
            Op::Leaf(Leaf::Parameter { .. }) => "parameter",
            Op::Leaf(Leaf::Constant { .. }) => "constant",
            Op::MatMul { .. } => "matmul",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Scale(_) => "scale",
            Op::Neg => "neg",
            Op::Sum { .. } => "sum",
            Op::Mean { .. } => "mean",
            Op::Broadcast { .. } => "broadcast",
            Op::SumTo { .. } => "sum_to",
            Op::Unary(a) => a.name(),
            Op::UnaryGrad(_) => "activation_grad",
            Op::Dropout { .. } => "dropout",
            Op::SoftmaxCrossEntropy => "softmax_cross_entropy",
            Op::SoftmaxCrossEntropyGrad => "softmax_cross_entropy_grad",
            Op::CountCorrect => "count_correct",
            Op::Normalize { norm, .. } => norm.name(),
            Op::NormalizeGrad { .. } => "normalize_grad",
            Op::Standardize { .. } => "batch_norm_eval",
            Op::MeanSquaredError => "mse",
            Op::Inner => "inner",
            Op::SquaredNorm => "squared_norm",
        }
    }

    pub fn is_leaf(&self) -> bool {
        matches!(self, Op::Leaf(_))
    }
}

fn arity(op: &Op) -> usize {
    match op {
        Op::Leaf(_) => 0,
        Op::MatMul { .. }
        | Op::Add
        | Op::Sub
        | Op::Mul
        | Op::UnaryGrad(_)
        | Op::NormalizeGrad { .. }
        | Op::SoftmaxCrossEntropy
        | Op::CountCorrect
        | Op::MeanSquaredError
        | Op::Inner => 2,
        Op::SoftmaxCrossEntropyGrad | Op::Standardize { .. } => 3,
        _ => 1,
    }
}

pub fn infer_shape(op: &Op, inputs: &[&Shape]) -> Result<Shape, GraphError> {
    let expected = arity(op);
    if inputs.len() != expected {
        return Err(GraphError::Arity {
            op: op.name(),
            expected,
            got: inputs.len(),
        });
    }
    match op {
        Op::Leaf(_) => Err(GraphError::Invalid(
            "leaves are made with Graph::input/parameter/constant".into(),
        )),
        Op::MatMul { trans_a, trans_b } => matmul::infer_shape(*trans_a, *trans_b, inputs[0], inputs[1]),
        Op::Add | Op::Sub | Op::Mul => arith::broadcast_shape(op.name(), inputs[0], inputs[1]),
        Op::Scale(_) | Op::Neg | Op::Unary(_) | Op::Dropout { .. } => Ok(inputs[0].clone()),
        Op::UnaryGrad(_) => arith::same_shape(op.name(), inputs[0], inputs[1]),
        Op::Normalize { .. } => norm::infer_shape(op, inputs[0]),
        Op::NormalizeGrad { .. } => norm::infer_shape(op, &arith::same_shape(op.name(), inputs[0], inputs[1])?),
        Op::Standardize { .. } => standardize::infer_shape(op, inputs[0], inputs[1], inputs[2]),
        Op::Sum { axis } | Op::Mean { axis } => reduce::reduced_shape(op.name(), inputs[0], *axis),
        Op::Broadcast { axis, shape } => reduce::check_broadcast(inputs[0], *axis, shape),
        Op::SumTo { axis, shape } => reduce::check_sum_to(inputs[0], *axis, shape),
        Op::SoftmaxCrossEntropy | Op::CountCorrect => loss::xent_shape(inputs[0], inputs[1]).map(|_| Shape::scalar()),
        Op::SoftmaxCrossEntropyGrad => {
            loss::xent_shape(inputs[0], inputs[1])?;
            reduce::expect_scalar(op.name(), inputs[2])?;
            Ok(inputs[0].clone())
        }
        Op::MeanSquaredError | Op::Inner => arith::same_shape(op.name(), inputs[0], inputs[1]).map(|_| Shape::scalar()),
        Op::SquaredNorm => Ok(Shape::scalar()),
    }
}

/// Runs a non-leaf op on the CPU.
pub fn forward_cpu<T: Element>(op: &Op, inputs: &[&ArrayD<T>], out_shape: &Shape, ctx: &RunContext) -> ArrayD<T> {
    match op {
        Op::Leaf(_) => unreachable!("leaves are bound, not computed"),
        Op::MatMul { trans_a, trans_b } => matmul::forward(inputs[0], inputs[1], *trans_a, *trans_b),
        Op::Add | Op::Sub | Op::Mul => arith::binary_forward(op, inputs[0], inputs[1], out_shape),
        Op::Scale(s) => arith::scale_forward(inputs[0], T::from_f64(*s)),
        Op::Neg => arith::scale_forward(inputs[0], -T::one()),
        Op::Sum { axis } => reduce::sum_forward(inputs[0], *axis, false),
        Op::Mean { axis } => reduce::sum_forward(inputs[0], *axis, true),
        Op::Broadcast { axis, shape } => reduce::broadcast_forward(inputs[0], *axis, shape),
        Op::SumTo { axis, shape } => reduce::sum_to_forward(inputs[0], *axis, shape),
        Op::Unary(a) => a.forward(inputs[0]),
        Op::UnaryGrad(a) => a.grad(inputs[0], inputs[1]),
        Op::Dropout { p, key } => dropout::forward(inputs[0], *p, *key, ctx),
        Op::Normalize { norm, eps } => norm::forward(*norm, *eps, inputs[0]),
        Op::NormalizeGrad { norm, eps } => norm::grad(*norm, *eps, inputs[0], inputs[1]),
        Op::Standardize { eps } => standardize::forward(*eps, inputs[0], inputs[1], inputs[2]),
        Op::SoftmaxCrossEntropy => loss::xent_forward(inputs[0], inputs[1]),
        Op::SoftmaxCrossEntropyGrad => loss::xent_grad_forward(inputs[0], inputs[1], inputs[2]),
        Op::CountCorrect => loss::count_correct_forward(inputs[0], inputs[1]),
        Op::MeanSquaredError => loss::mse_forward(inputs[0], inputs[1]),
        Op::Inner => inner::inner_forward(inputs[0], inputs[1]),
        Op::SquaredNorm => inner::squared_norm_forward(inputs[0]),
    }
}

/// Materialises a constant leaf.
pub fn constant_cpu<T: Element>(value: &ConstValue, shape: &Shape) -> ArrayD<T> {
    match value {
        ConstValue::Fill(v) => ArrayD::from_elem(shape.dims(), T::from_f64(*v)),
        ConstValue::Data(d) => ArrayD::from_shape_vec(shape.dims(), d.iter().map(|&v| T::from_f64(v)).collect())
            .expect("constant length checked when the node was made"),
    }
}

/// Appends the nodes of `node`'s vector-Jacobian product for upstream gradient `grad`.
/// Returns one gradient per input, `None` where `wants[i]` is false.
pub fn vjp(graph: &mut Graph, node: NodeId, grad: NodeId, wants: &[bool]) -> Result<Vec<Option<NodeId>>, GraphError> {
    let n = graph.node(node).clone();
    let x = &n.inputs;
    match &n.op {
        Op::Leaf(_) => Ok(Vec::new()),
        Op::MatMul { trans_a, trans_b } => matmul::vjp(graph, x[0], x[1], *trans_a, *trans_b, grad, wants),
        Op::Add | Op::Sub | Op::Mul => arith::binary_vjp(graph, &n.op, x[0], x[1], grad, wants),
        Op::Scale(_) | Op::Neg => Ok(vec![Some(arith::scale_vjp(graph, &n.op, grad)?)]),
        Op::Sum { axis } | Op::Mean { axis } => {
            reduce::sum_vjp(graph, x[0], *axis, matches!(n.op, Op::Mean { .. }), grad).map(|g| vec![Some(g)])
        }
        Op::Broadcast { axis, .. } => Ok(vec![Some(reduce::broadcast_vjp(graph, *axis, x[0], grad)?)]),
        Op::SumTo { axis, .. } => Ok(vec![Some(reduce::sum_to_vjp(graph, *axis, x[0], grad)?)]),
        Op::Unary(a) => Ok(vec![Some(activation::vjp(graph, *a, node, x[0], grad)?)]),
        Op::UnaryGrad(_) => Err(GraphError::Invalid(
            "second derivatives of activations are not supported".into(),
        )),
        Op::Dropout { p, key } => Ok(vec![Some(dropout::vjp(graph, *p, *key, grad)?)]),
        Op::Normalize { norm, eps } => Ok(vec![Some(norm::vjp(graph, *norm, *eps, x[0], grad)?)]),
        Op::NormalizeGrad { .. } => Err(GraphError::Invalid(
            "second derivatives of normalizations are not supported".into(),
        )),
        Op::Standardize { .. } => Err(GraphError::Invalid(
            "BatchNorm's evaluation form has no derivative: a training step uses the batch's statistics".into(),
        )),
        Op::SoftmaxCrossEntropy => loss::xent_vjp(graph, x[0], x[1], grad, wants),
        Op::SoftmaxCrossEntropyGrad => Err(GraphError::Invalid(
            "second derivatives of cross-entropy are not supported".into(),
        )),
        Op::CountCorrect => Err(GraphError::Invalid(
            "a count of correct predictions has no derivative".into(),
        )),
        Op::MeanSquaredError => loss::mse_vjp(graph, x[0], x[1], grad, wants),
        Op::Inner => inner::inner_vjp(graph, x[0], x[1], grad, wants),
        Op::SquaredNorm => inner::squared_norm_vjp(graph, x[0], grad).map(|g| vec![Some(g)]),
    }
}

/// Appends the nodes of `node`'s Jacobian-vector product given its inputs' tangents
/// (`None` = zero tangent). Returns `None` when every input tangent is zero.
pub fn jvp(graph: &mut Graph, node: NodeId, tangents: &[Option<NodeId>]) -> Result<Option<NodeId>, GraphError> {
    if tangents.iter().all(Option::is_none) {
        return Ok(None);
    }
    let n = graph.node(node).clone();
    let x = &n.inputs;
    let t = tangents;
    let out = match &n.op {
        Op::Leaf(_) => return Ok(None),
        Op::MatMul { trans_a, trans_b } => matmul::jvp(graph, x[0], x[1], *trans_a, *trans_b, t)?,
        Op::Add | Op::Sub | Op::Mul => arith::binary_jvp(graph, &n.op, node, x[0], x[1], t)?,
        // Linear ops: the tangent goes through the op itself.
        Op::Scale(_)
        | Op::Neg
        | Op::Sum { .. }
        | Op::Mean { .. }
        | Op::Broadcast { .. }
        | Op::SumTo { .. }
        | Op::Dropout { .. } => graph.push(n.op.clone(), &[t[0].expect("unary op with a tangent")])?,
        Op::Unary(a) => activation::jvp(graph, *a, node, x[0], t[0].expect("unary op with a tangent"))?,
        Op::Normalize { norm, eps } => norm::jvp(graph, *norm, *eps, x[0], t[0].expect("unary op with a tangent"))?,
        Op::UnaryGrad(_)
        | Op::NormalizeGrad { .. }
        | Op::Standardize { .. }
        | Op::SoftmaxCrossEntropyGrad
        | Op::CountCorrect => return Err(GraphError::Invalid(format!("no forward-mode rule for {}", n.op.name()))),
        Op::SoftmaxCrossEntropy => loss::xent_jvp(graph, x[0], x[1], t)?,
        Op::MeanSquaredError => loss::mse_jvp(graph, x[0], x[1], t)?,
        Op::Inner => inner::inner_jvp(graph, x[0], x[1], t)?,
        Op::SquaredNorm => inner::squared_norm_jvp(graph, x[0], t[0].expect("unary op with a tangent"))?,
    };
    Ok(Some(out))
}

/// Cost of running `op` on inputs of the given shapes.
pub fn cost(op: &Op, inputs: &[&Shape], out: &Shape, elem_bytes: usize) -> Cost {
    let eb = elem_bytes as u64;
    match op {
        Op::Leaf(_) => Cost {
            flops: 0,
            bytes_moved: 0,
            output_bytes: out.numel() as u64 * eb,
            recompute: RecomputeClass::Expensive,
        },
        Op::MatMul { trans_a, .. } => matmul::cost(*trans_a, inputs[0], out, eb),
        Op::Add | Op::Sub | Op::Mul | Op::Scale(_) | Op::Neg => arith::cost(inputs, out, eb),
        Op::Sum { .. } | Op::Mean { .. } | Op::SumTo { .. } | Op::Broadcast { .. } => reduce::cost(op, inputs, out, eb),
        Op::Dropout { .. } => dropout::cost(inputs, out, eb),
        Op::Unary(a) | Op::UnaryGrad(a) => activation::cost(*a, inputs, out, eb),
        Op::Normalize { .. } => norm::cost(false, inputs, out, eb),
        Op::NormalizeGrad { .. } => norm::cost(true, inputs, out, eb),
        Op::Standardize { .. } => standardize::cost(inputs, out, eb),
        Op::Inner | Op::SquaredNorm => inner::cost(inputs, out, eb),
        Op::MeanSquaredError => loss::mse_cost(inputs, out, eb),
        Op::SoftmaxCrossEntropy | Op::SoftmaxCrossEntropyGrad | Op::CountCorrect => loss::xent_cost(inputs, out, eb),
    }
}

impl Cost {
    /// Memory-bound elementwise work of `flops_per` flops an output element: cheap to
    /// recompute.
    pub fn elementwise(flops_per: u64, inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
        let out_n = out.numel() as u64;
        let in_n: u64 = inputs.iter().map(|s| s.numel() as u64).sum();
        Cost {
            flops: flops_per * out_n,
            bytes_moved: (in_n + out_n) * elem_bytes,
            output_bytes: out_n * elem_bytes,
            recompute: RecomputeClass::Cheap,
        }
    }

    /// A reduction: two flops an input element, and worth keeping (it reads far more than
    /// it writes).
    pub fn reduction(inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
        let in_n: u64 = inputs.iter().map(|s| s.numel() as u64).sum();
        Cost {
            flops: 2 * in_n,
            recompute: RecomputeClass::Expensive,
            ..Cost::elementwise(0, inputs, out, elem_bytes)
        }
    }
}
