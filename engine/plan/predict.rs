//! Stage 4 of planning: walking a schedule with sizes instead of data predicts a step's
//! memory exactly (and its FLOPs), before anything runs.

use super::schedule::{Instr, Schedule};
use crate::graph::{Graph, NodeId};
use crate::memory::{Category, MemoryReport};
use crate::ops::{self, Op};

impl Schedule {
    /// Walks the schedule with sizes instead of data, on top of `resident` bytes (parameters,
    /// optimizer state) already live: the memory one step will use, before it runs.
    pub fn predict(&self, graph: &Graph, resident: &MemoryReport) -> MemoryReport {
        self.predict_with(graph, resident, OperandCopies::None)
    }

    /// [`Self::predict`] on a backend whose matrix products read rounded copies of both
    /// operands (`--dtype bf16|f16`): each product holds them, as temporaries, while it runs.
    pub fn predict_with(&self, graph: &Graph, resident: &MemoryReport, copies: OperandCopies) -> MemoryReport {
        let mut m = *resident;
        m.reset_peak();
        let mut live_category = vec![Category::Temporaries; graph.len()];
        for (instr, &cat) in self.instrs.iter().zip(&self.category) {
            match (*instr, instr.makes()) {
                (Instr::Free(id), _) => m.remove(live_category[id.0], graph.bytes(id)),
                (_, Some(id)) => {
                    m.add(cat, graph.bytes(id));
                    live_category[id.0] = cat;
                    let held = product_operand_copies(graph, instr, copies);
                    m.add(Category::Temporaries, held);
                    m.remove(Category::Temporaries, held);
                }
                (_, None) => {}
            }
        }
        m
    }

    /// FLOPs of one run, and of its recomputations alone.
    pub fn flops(&self, graph: &Graph) -> (u64, u64) {
        let (mut total, mut recompute) = (0, 0);
        for instr in &self.instrs {
            for id in instr.runs() {
                let node = graph.node(id);
                let shapes: Vec<_> = node.inputs.iter().map(|&x| graph.shape(x)).collect();
                let f = ops::cost(&node.op, &shapes, &node.shape, node.dtype.size_bytes()).flops;
                total += f;
                if instr.is_recompute() {
                    recompute += f;
                }
            }
        }
        (total, recompute)
    }
}

/// How a device's matrix products hold the rounded copies of their operands while they run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OperandCopies {
    /// No copies: products read their f32 operands as stored.
    None,
    /// 16-bit values packed two to an f32 word (the GPU's pool).
    Packed16,
    /// Values rounded to 16 bits and kept as f32 (the CPU's reference of the same arithmetic).
    Widened,
}

impl OperandCopies {
    /// Bytes of one copy of a `numel`-element operand.
    pub fn bytes(self, numel: usize) -> u64 {
        match self {
            OperandCopies::None => 0,
            OperandCopies::Packed16 => (numel.div_ceil(2).max(1) * 4) as u64,
            OperandCopies::Widened => (numel * 4) as u64,
        }
    }
}

/// Bytes of the copies a matrix product in `instr` makes of its two operands.
fn product_operand_copies(graph: &Graph, instr: &Instr, copies: OperandCopies) -> u64 {
    if copies == OperandCopies::None {
        return 0;
    }
    let product = instr
        .runs()
        .into_iter()
        .find(|&id| matches!(graph.node(id).op, Op::MatMul { .. }));
    let Some(id) = product else { return 0 };
    let bytes = |x: NodeId| copies.bytes(graph.shape(x).numel());
    graph.node(id).inputs.iter().map(|&x| bytes(x)).sum()
}
