//! Which matrix products of a `--dtype fp8` step multiply FP8 operands, and in which
//! format. A pure rule of the graph (a product's shape and what its operands are), so every
//! device, every checkpoint policy and the memory prediction agree on it:
//!
//! - a product runs in FP8 when its rows, columns and inner dimension are all multiples of
//!   16 (what cuBLASLt's FP8 kernels take); the others (a 10-class output layer, a batch of
//!   100 rows) multiply bf16 operands, as `--dtype bf16` does;
//! - an operand the forward pass made (an input, a weight, an activation) is e4m3; one the
//!   backward or tangent pass made (a gradient) is [`GRADIENT_FORMAT`].
//!
//! Every FP8 operand is scaled per tensor by a power of two from its current absolute
//! maximum (see `backend::cpu::fp8_rounding`). cuBLASLt has no e5m2 x e5m2 kernel, so a
//! product of two gradients (none in a training step) takes its second one in e4m3.

use crate::graph::{Graph, NodeId, Phase};
use crate::ops::Op;

/// An 8-bit float format.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Fp8Format {
    /// 4 exponent bits, 3 mantissa bits: largest finite value 448, no infinities.
    E4M3,
    /// 5 exponent bits, 2 mantissa bits: largest finite value 57344.
    E5M2,
}

impl Fp8Format {
    /// The largest finite value: an operand's absolute maximum is scaled to at most this.
    pub fn max(self) -> f32 {
        match self {
            Fp8Format::E4M3 => 448.0,
            Fp8Format::E5M2 => 57344.0,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Fp8Format::E4M3 => "e4m3",
            Fp8Format::E5M2 => "e5m2",
        }
    }
}

/// The format of gradient operands: e5m2, as torchao's and Transformer Engine's recipes
/// take them. Measured on the shipped data (the README's command, seeds 0-2, in
/// docs/performance.md), e5m2 gradients trained to 97.60% mean test accuracy against
/// e4m3's 97.48%, with equal training losses: the same within noise, so the convention.
pub const GRADIENT_FORMAT: Fp8Format = Fp8Format::E5M2;

/// The side every FP8 product's dimensions must be a multiple of.
pub const FP8_DIMENSION_MULTIPLE: usize = 16;

/// Whether a product of `rows` x `columns` over an inner dimension `inner` can run in FP8.
pub fn takes_fp8(rows: usize, columns: usize, inner: usize) -> bool {
    [rows, columns, inner]
        .iter()
        .all(|&d| d > 0 && d % FP8_DIMENSION_MULTIPLE == 0)
}

/// The formats of product `id`'s two operands when it multiplies in FP8 (in a `--dtype
/// fp8` step), or `None` when it is not a product or its shape is one FP8 cannot take.
pub fn operand_formats(graph: &Graph, id: NodeId) -> Option<[Fp8Format; 2]> {
    let node = graph.node(id);
    let Op::MatMul { trans_a, .. } = node.op else {
        return None;
    };
    let a = graph.shape(node.inputs[0]).dims();
    let inner = if trans_a { a.first() } else { a.get(1) };
    let out = node.shape.dims();
    let (Some(&rows), Some(&columns), Some(&inner)) = (out.first(), out.get(1), inner) else {
        return None;
    };
    if !takes_fp8(rows, columns, inner) {
        return None;
    }
    let format = |x: NodeId| match graph.node(x).phase {
        Phase::Forward => Fp8Format::E4M3,
        Phase::Backward | Phase::Tangent => GRADIENT_FORMAT,
    };
    match [format(node.inputs[0]), format(node.inputs[1])] {
        [Fp8Format::E5M2, Fp8Format::E5M2] => Some([Fp8Format::E5M2, Fp8Format::E4M3]),
        formats => Some(formats),
    }
}
