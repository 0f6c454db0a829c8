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
        self.predict_with(graph, resident, false)
    }

    /// [`Self::predict`] on a backend whose matrix products read 16-bit copies of both
    /// operands (bf16/f16 on a GPU): each product holds them, as temporaries, while it runs.
    pub fn predict_with(&self, graph: &Graph, resident: &MemoryReport, operand_copies: bool) -> MemoryReport {
        let mut m = *resident;
        m.reset_peak();
        let mut live_category = vec![Category::Temporaries; graph.len()];
        for (instr, &cat) in self.instrs.iter().zip(&self.category) {
            match (*instr, instr.makes()) {
                (Instr::Free(id), _) => m.remove(live_category[id.0], graph.bytes(id)),
                (_, Some(id)) => {
                    m.add(cat, graph.bytes(id));
                    live_category[id.0] = cat;
                    if operand_copies {
                        let copies = product_operand_copies(graph, instr);
                        m.add(Category::Temporaries, copies);
                        m.remove(Category::Temporaries, copies);
                    }
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

/// Bytes of the 16-bit copies a matrix product in `instr` makes of its two operands: each
/// is stored in whole f32 words (two values a word), as the GPU pool holds them.
fn product_operand_copies(graph: &Graph, instr: &Instr) -> u64 {
    let product = instr
        .runs()
        .into_iter()
        .find(|&id| matches!(graph.node(id).op, Op::MatMul { .. }));
    let Some(id) = product else { return 0 };
    let words = |x: NodeId| (graph.shape(x).numel().div_ceil(2).max(1) * 4) as u64;
    graph.node(id).inputs.iter().map(|&x| words(x)).sum()
}
