//! Stage 4 of planning, for a low-precision step (`--dtype bf16|f16`): which tensors are
//! stored in 16 bits. Decided on the graph, not on a schedule, so every checkpoint policy
//! rounds at the same points and stays bitwise identical to `none` within a dtype.
//!
//! A node is stored in 16 bits when its op can write 16-bit values (matrix products, adds,
//! activations and their derivatives, and inputs, which the device binds rounded: a batch
//! that only products read), no output the host reads is it, and every op that
//! reads it can read 16-bit values (those, and a bias gradient's column sums). A bias add or
//! an activation reads 16 bits only when it writes 16 bits too, so a fused Linear layer is
//! either 16-bit through (product, bias, activation) or f32 through. Everything else (the
//! loss and its softmax, gradients of parameters, dropout, what the host reads) stays f32.
//!
//! Each 16-bit value is rounded once, where it is made (to nearest even), on every device:
//! the GPU stores the 16 bits, the CPU reference the same value in f32.

use super::predict::HalfLayout;
use super::schedule::{Schedule, Storage};
use crate::graph::{Graph, Leaf, NodeId};
use crate::ops::Op;

fn writes_half(op: &Op) -> bool {
    // An input is "written" where the device binds it: a batch read by products alone is
    // gathered or uploaded in 16 bits (no f32 copy and no cast before each product).
    matches!(
        op,
        Op::MatMul { .. } | Op::Add | Op::Unary(_) | Op::UnaryGrad(_) | Op::Leaf(Leaf::Input { .. })
    )
}

/// Whether node `reader`, made with storage `out`, can read its input `slot` in 16 bits.
fn reads_half(graph: &Graph, reader: NodeId, slot: usize, out: Storage) -> bool {
    let node = graph.node(reader);
    match &node.op {
        Op::MatMul { .. } | Op::UnaryGrad(_) => slot < 2,
        Op::Add | Op::Unary(_) => out == Storage::Half,
        // A bias gradient: the column sums of a matrix, summed in f32.
        Op::SumTo { axis: None, shape } => {
            let input = graph.shape(node.inputs[0]).dims();
            input.len() == 2 && shape.dims() == [input[1]]
        }
        _ => false,
    }
}

/// Stage 4: `schedule` as a device that holds 16-bit values as `layout` says runs it: in a
/// low-precision step the tensors that can be are stored in 16 bits; an f32 step unchanged.
pub fn store_16bit(graph: &Graph, mut schedule: Schedule, layout: HalfLayout) -> Schedule {
    if layout != HalfLayout::None {
        schedule.storage = half_storage(graph, &schedule);
    }
    schedule
}

/// The storage of every node of `graph` in a low-precision run of `schedule`.
pub fn half_storage(graph: &Graph, schedule: &Schedule) -> Vec<Storage> {
    let n = graph.len();
    let mut runs = vec![false; n];
    for instr in &schedule.instrs {
        for id in instr.runs() {
            runs[id.0] = true;
        }
    }
    let mut output = vec![false; n];
    for &o in &schedule.outputs {
        output[o.0] = true;
    }
    let mut readers: Vec<Vec<(NodeId, usize)>> = vec![Vec::new(); n];
    for j in (0..n).filter(|&j| runs[j]) {
        for (slot, &x) in graph.node(NodeId(j)).inputs.iter().enumerate() {
            readers[x.0].push((NodeId(j), slot));
        }
    }
    // Readers come after what they read, so deciding from the last node back sees every
    // reader's own storage first.
    let mut storage = vec![Storage::F32; n];
    for i in (0..n).rev() {
        let op = &graph.node(NodeId(i)).op;
        let half = runs[i]
            && !output[i]
            && writes_half(op)
            && !readers[i].is_empty()
            && readers[i]
                .iter()
                .all(|&(j, slot)| reads_half(graph, j, slot, storage[j.0]));
        if half {
            storage[i] = Storage::Half;
        }
    }
    storage
}
