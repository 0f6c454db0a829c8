//! Stage 4 of planning: walking a schedule with sizes instead of data predicts a step's
//! memory exactly (and its FLOPs), before anything runs.

use super::schedule::{Instr, Schedule, Storage};
use crate::graph::{Graph, Leaf, NodeId};
use crate::memory::{Category, MemoryReport};
use crate::ops::Op;

impl Schedule {
    /// Walks the schedule with sizes instead of data, on top of `resident` bytes (parameters,
    /// optimizer state) already live: the memory one step will use, before it runs.
    pub fn predict(&self, graph: &Graph, resident: &MemoryReport) -> MemoryReport {
        self.predict_with(graph, resident, HalfLayout::None)
    }

    /// [`Self::predict`] on a device that holds 16-bit values as `layout` says
    /// (`--dtype bf16|f16`): tensors stored in 16 bits count at that size, and each matrix
    /// product holds a rounded copy of each f32 operand, as a temporary, while it runs.
    pub fn predict_with(&self, graph: &Graph, resident: &MemoryReport, layout: HalfLayout) -> MemoryReport {
        self.walk(graph, resident, layout, |_, _| {})
    }

    /// Live bytes (on top of the resident ones) at each instruction of the walk: the most
    /// while it runs and what stays live after it. The checkpoint planner reads a probe
    /// schedule's levels to learn what each block of a nested plan costs in memory.
    pub fn levels(&self, graph: &Graph, layout: HalfLayout) -> Vec<Level> {
        let mut levels = Vec::with_capacity(self.instrs.len());
        self.walk(graph, &MemoryReport::default(), layout, |most, after| {
            levels.push(Level { most, after })
        });
        levels
    }

    /// The walk behind [`Self::predict_with`]; `at(most, after)` hears each instruction's live
    /// totals.
    fn walk(
        &self,
        graph: &Graph,
        resident: &MemoryReport,
        layout: HalfLayout,
        mut at: impl FnMut(u64, u64),
    ) -> MemoryReport {
        let bytes = |id: NodeId| self.stored_bytes(graph, id, layout);
        let mut m = *resident;
        m.reset_peak();
        let mut live_category = vec![Category::Temporaries; graph.len()];
        for (instr, &cat) in self.instrs.iter().zip(&self.category) {
            let mut most = m.live.total();
            match (*instr, instr.makes()) {
                (Instr::Free(id), _) => m.remove(live_category[id.0], bytes(id)),
                (_, Some(id)) => {
                    m.add(cat, bytes(id));
                    live_category[id.0] = cat;
                    let held = self.product_operand_copies(graph, instr, layout);
                    most = m.live.total() + held;
                    m.add(Category::Temporaries, held);
                    m.remove(Category::Temporaries, held);
                }
                (_, None) => {}
            }
            at(most, m.live.total());
        }
        m
    }

    /// FLOPs of one run, and of its recomputations alone.
    pub fn flops(&self, graph: &Graph) -> (u64, u64) {
        let (mut total, mut recompute) = (0, 0);
        for instr in &self.instrs {
            for id in instr.runs() {
                let f = super::cost_model::node_cost(graph, id).flops;
                total += f;
                if instr.is_recompute() {
                    recompute += f;
                }
            }
        }
        (total, recompute)
    }
}

/// Live bytes at one instruction of a schedule (see [`Schedule::levels`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// The most live while it runs (its output and any rounded operand copies included).
    pub most: u64,
    /// Live once it is done.
    pub after: u64,
}

/// How a device holds 16-bit values: its tensors stored in 16 bits and the rounded copies
/// its matrix products make of f32 operands (and, in an FP8 step, the FP8 copies).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum HalfLayout {
    /// An f32 step: nothing is held in 16 bits.
    #[default]
    None,
    /// 16-bit values packed two to an f32 word (the GPU's pool). Parameters keep 16-bit
    /// twins beside them (resident, counted as parameters), so products copy no parameter.
    Packed,
    /// Values rounded to 16 bits and kept as f32 (the CPU's reference of the same arithmetic).
    Widened,
    /// `Packed` with FP8 products (`--dtype fp8` on the GPU): each operand of a product
    /// [`super::fp8::operand_formats`] puts in FP8, the parameters' twins included, is
    /// copied to one byte a value (whole f32 words) and a 4-byte scale.
    PackedFp8,
    /// `Widened` with FP8 products (the CPU): each FP8 operand is copied, rounded, as f32.
    WidenedFp8,
}

impl HalfLayout {
    /// Bytes of `numel` 16-bit values.
    pub fn bytes(self, numel: usize) -> u64 {
        match self {
            HalfLayout::None => 0,
            HalfLayout::Packed | HalfLayout::PackedFp8 => (numel.div_ceil(2).max(1) * 4) as u64,
            HalfLayout::Widened | HalfLayout::WidenedFp8 => (numel * 4) as u64,
        }
    }

    /// Bytes of an FP8 product's copy of an operand of `numel` values (0 outside FP8 steps).
    pub fn fp8_copy_bytes(self, numel: usize) -> u64 {
        match self {
            HalfLayout::PackedFp8 => (numel.div_ceil(4).max(1) * 4 + 4) as u64,
            HalfLayout::WidenedFp8 => (numel * 4) as u64,
            _ => 0,
        }
    }

    /// Whether 16-bit values are packed (the GPU), so parameters have 16-bit twins.
    pub fn packed(self) -> bool {
        matches!(self, HalfLayout::Packed | HalfLayout::PackedFp8)
    }

    /// Whether the step's products take FP8 operands where their shape allows.
    pub fn fp8(self) -> bool {
        matches!(self, HalfLayout::PackedFp8 | HalfLayout::WidenedFp8)
    }
}

impl Schedule {
    /// Bytes of node `id`'s tensor as this schedule stores it on a device of `layout`.
    pub fn stored_bytes(&self, graph: &Graph, id: NodeId, layout: HalfLayout) -> u64 {
        match self.storage[id.0] {
            Storage::Half => layout.bytes(graph.shape(id).numel()),
            Storage::F32 => graph.bytes(id),
        }
    }

    /// Bytes of the copies a matrix product in `instr` makes of its f32 operands (an
    /// operand stored in 16 bits is read as it is, and so is a parameter's twin); an FP8
    /// product copies both operands, whatever their storage.
    fn product_operand_copies(&self, graph: &Graph, instr: &Instr, layout: HalfLayout) -> u64 {
        if layout == HalfLayout::None {
            return 0;
        }
        let product = instr.runs().find(|&id| matches!(graph.node(id).op, Op::MatMul { .. }));
        let Some(id) = product else { return 0 };
        let inputs = &graph.node(id).inputs;
        if layout.fp8() && super::fp8::operand_formats(graph, id).is_some() {
            return inputs
                .iter()
                .map(|&x| layout.fp8_copy_bytes(graph.shape(x).numel()))
                .sum();
        }
        let twin = |x: NodeId| layout.packed() && matches!(graph.node(x).op, Op::Leaf(Leaf::Parameter { .. }));
        let copied = |x: &&NodeId| self.storage[x.0] == Storage::F32 && !twin(**x);
        inputs
            .iter()
            .filter(copied)
            .map(|&x| layout.bytes(graph.shape(x).numel()))
            .sum()
    }
}
