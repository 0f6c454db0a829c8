//! Elementwise activations and their derivatives, forward and backward side by side:
//! `Op::Unary` and `Op::UnaryGrad`. GPU: kernels/activation.cu, launched by
//! backend/cuda/ops/activation.rs with the code [`Activation::kernel`] names.

use super::cpu_map as cpu;
use super::{Cost, Op};
use crate::graph::{Graph, GraphError, NodeId};
use crate::kernels::ActivationKind;
use crate::tensor::{Element, Shape};
use ndarray::ArrayD;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Activation {
    Relu,
    /// `x` for `x > 0`, else `slope · x`.
    LeakyRelu(f64),
    /// The tanh approximation of GELU (as in GPT-2 and PyTorch's `approximate="tanh"`).
    Gelu,
    /// `x · sigmoid(x)` (SiLU, also called swish): the activation of SwiGLU.
    Silu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;

impl Activation {
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Exp => "exp",
            Activation::Log => "log",
        }
    }

    /// Activations usable between MLP layers, by their command-line name.
    pub fn parse(name: &str) -> Option<Activation> {
        match name {
            "relu" => Some(Activation::Relu),
            "leaky_relu" | "leaky-relu" => Some(Activation::LeakyRelu(0.01)),
            "gelu" => Some(Activation::Gelu),
            "silu" => Some(Activation::Silu),
            "sigmoid" => Some(Activation::Sigmoid),
            "tanh" => Some(Activation::Tanh),
            _ => None,
        }
    }

    /// When the derivative is a function of the output, backward keeps the output (which
    /// the next layer keeps anyway) instead of the input: one saved tensor fewer per layer.
    pub fn grad_from_output(&self) -> bool {
        match self {
            Activation::Relu | Activation::Sigmoid | Activation::Tanh | Activation::Exp => true,
            Activation::LeakyRelu(slope) => *slope > 0.0,
            Activation::Gelu | Activation::Silu | Activation::Log => false,
        }
    }

    pub fn flops_per_element(&self) -> u64 {
        match self {
            Activation::Relu | Activation::LeakyRelu(_) => 1,
            Activation::Sigmoid | Activation::Tanh | Activation::Exp | Activation::Log => 4,
            Activation::Silu => 5,
            Activation::Gelu => 10,
        }
    }

    pub fn forward<T: Element>(&self, x: &ArrayD<T>) -> ArrayD<T> {
        let zero = T::zero();
        let one = T::one();
        match *self {
            // NaN stays NaN (as in PyTorch), so a diverging run cannot hide behind a zero.
            Activation::Relu => cpu::map(x, move |v| if v > zero || v.is_nan() { v } else { zero }),
            Activation::LeakyRelu(s) => {
                let s = T::from_f64(s);
                cpu::map(x, move |v| if v > zero { v } else { s * v })
            }
            Activation::Gelu => {
                let (c, k, half) = (T::from_f64(SQRT_2_OVER_PI), T::from_f64(GELU_CUBIC), T::from_f64(0.5));
                cpu::map(x, move |v| half * v * (one + (c * (v + k * v * v * v)).tanh()))
            }
            Activation::Silu => cpu::map(x, move |v| v / (one + (-v).exp())),
            Activation::Sigmoid => cpu::map(x, move |v| one / (one + (-v).exp())),
            Activation::Tanh => cpu::map(x, |v| v.tanh()),
            Activation::Exp => cpu::map(x, |v| v.exp()),
            Activation::Log => cpu::map(x, |v| v.ln()),
        }
    }

    /// `g · f'`, where `saved` is the output if [`Self::grad_from_output`], else the input.
    pub fn grad<T: Element>(&self, saved: &ArrayD<T>, g: &ArrayD<T>) -> ArrayD<T> {
        let zero = T::zero();
        let one = T::one();
        let (s, g) = (saved.view(), g.view());
        match *self {
            Activation::Relu => cpu::zip_map(s, g, move |y, g| if y > zero { g } else { zero }),
            Activation::LeakyRelu(slope) => {
                let slope = T::from_f64(slope);
                cpu::zip_map(s, g, move |v, g| if v > zero { g } else { slope * g })
            }
            Activation::Gelu => {
                let (c, k, half, three) = (
                    T::from_f64(SQRT_2_OVER_PI),
                    T::from_f64(GELU_CUBIC),
                    T::from_f64(0.5),
                    T::from_f64(3.0),
                );
                cpu::zip_map(s, g, move |x, g| {
                    let t = (c * (x + k * x * x * x)).tanh();
                    let d = half * (one + t) + half * x * (one - t * t) * c * (one + three * k * x * x);
                    g * d
                })
            }
            // d/dx x·σ(x) = σ(x) · (1 + x · (1 − σ(x))).
            Activation::Silu => cpu::zip_map(s, g, move |x, g| {
                let sig = one / (one + (-x).exp());
                g * (sig * (one + x * (one - sig)))
            }),
            Activation::Sigmoid => cpu::zip_map(s, g, move |y, g| g * y * (one - y)),
            Activation::Tanh => cpu::zip_map(s, g, move |y, g| g * (one - y * y)),
            Activation::Exp => cpu::zip_map(s, g, |y, g| g * y),
            Activation::Log => cpu::zip_map(s, g, |x, g| g / x),
        }
    }
}

impl Activation {
    /// The GPU kernel's code for this activation, and the slope it takes.
    pub fn kernel(self) -> (ActivationKind, f32) {
        match self {
            Activation::Relu => (ActivationKind::Relu, 0.0),
            Activation::LeakyRelu(s) => (ActivationKind::LeakyRelu, s as f32),
            Activation::Gelu => (ActivationKind::Gelu, 0.0),
            Activation::Silu => (ActivationKind::Silu, 0.0),
            Activation::Sigmoid => (ActivationKind::Sigmoid, 0.0),
            Activation::Tanh => (ActivationKind::Tanh, 0.0),
            Activation::Exp => (ActivationKind::Exp, 0.0),
            Activation::Log => (ActivationKind::Log, 0.0),
        }
    }

    /// What backward reads: the activation's output `node` or its input `x`.
    fn saved(&self, node: NodeId, x: NodeId) -> NodeId {
        if self.grad_from_output() {
            node
        } else {
            x
        }
    }
}

/// The VJP of `node = a(x)`: `UnaryGrad(a)` on what it saved and the upstream gradient.
pub fn vjp(graph: &mut Graph, a: Activation, node: NodeId, x: NodeId, grad: NodeId) -> Result<NodeId, GraphError> {
    graph.push(Op::UnaryGrad(a), &[a.saved(node, x), grad])
}

/// The JVP of `node = a(x)`: the same derivative applied to the tangent.
pub fn jvp(graph: &mut Graph, a: Activation, node: NodeId, x: NodeId, tangent: NodeId) -> Result<NodeId, GraphError> {
    graph.push(Op::UnaryGrad(a), &[a.saved(node, x), tangent])
}

/// Elementwise and memory-bound: cheap to recompute.
pub fn cost(a: Activation, inputs: &[&Shape], out: &Shape, elem_bytes: u64) -> Cost {
    Cost::elementwise(a.flops_per_element(), inputs, out, elem_bytes)
}
