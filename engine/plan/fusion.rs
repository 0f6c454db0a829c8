//! Stage 3 of planning: fuses a Linear layer's forward ops (matrix product, bias add, and a ReLU after it) into
//! one [`Instr::Linear`] wherever nothing else reads the product or the pre-activation: the
//! GPU runs it as one cuBLASLt call with a bias (+ReLU) epilogue, the CPU as one pass over
//! the product, and neither ever stores the intermediates, so the schedule's memory
//! prediction drops them too.
//!
//! Only ReLU joins the epilogue: its backward reads its output, so the pre-activation is
//! dead once the ReLU has run. GELU's backward reads the pre-activation, and cuBLASLt's GELU
//! is not our kernel's to the last bit (checkpoint policies would then disagree), so a GELU
//! layer fuses its bias only.

use super::schedule::{Instr, Schedule};
use crate::graph::{Graph, Leaf, NodeId};
use crate::ops::{Activation, Op};

/// A reader that is not an instruction: the run's outputs.
const OUTPUT: usize = usize::MAX;

/// The schedule with every fusable Linear layer fused.
pub fn fuse_linear(graph: &Graph, schedule: Schedule) -> Schedule {
    let n = schedule.instrs.len();
    // For each instruction that makes a buffer: how many read that buffer, the first that
    // does, and where it is freed (counts, not lists: a nested plan has millions).
    let mut readers = vec![0u32; n];
    let mut first_reader = vec![OUTPUT; n];
    let mut freed_at: Vec<Option<usize>> = vec![None; n];
    let mut live: Vec<Option<usize>> = vec![None; graph.len()];
    for (k, instr) in schedule.instrs.iter().enumerate() {
        match *instr {
            Instr::Compute(id) | Instr::Recompute(id) => {
                for x in &graph.node(id).inputs {
                    if let Some(src) = live[x.0] {
                        readers[src] += 1;
                        if readers[src] == 1 {
                            first_reader[src] = k;
                        }
                    }
                }
                live[id.0] = Some(k);
            }
            Instr::Free(id) => {
                if let Some(src) = live[id.0].take() {
                    freed_at[src] = Some(k);
                }
            }
            Instr::Linear { .. } | Instr::Update { .. } => unreachable!("a schedule is fused once, before updates"),
        }
    }
    for o in &schedule.outputs {
        if let Some(src) = live[o.0] {
            readers[src] += 1;
        }
    }

    let made = |k: usize| match schedule.instrs[k] {
        Instr::Compute(id) => Some((id, false)),
        Instr::Recompute(id) => Some((id, true)),
        _ => None,
    };
    // The one instruction reading k's buffer, if exactly one does (and it is freed after).
    let sole_reader = |k: usize| match (readers[k], first_reader[k]) {
        (1, r) if r != OUTPUT && freed_at[k].is_some() => Some(r),
        _ => None,
    };

    // The fused instruction at the product's place, and the instruction whose category it takes.
    let mut fused_at: Vec<Option<(Instr, usize)>> = vec![None; n];
    let mut dropped = vec![false; n];
    for k in 0..n {
        let Some((matmul, recompute)) = made(k) else { continue };
        if !matches!(graph.node(matmul).op, Op::MatMul { .. }) || graph.shape(matmul).rank() != 2 {
            continue;
        }
        let Some(j) = sole_reader(k) else { continue };
        let Some((bias_add, r)) = made(j) else { continue };
        if r != recompute || !is_bias_add(graph, bias_add, matmul) {
            continue;
        }
        let act = sole_reader(j)
            .and_then(|l| made(l).map(|(id, r)| (l, id, r)))
            .filter(|&(_, id, r)| r == recompute && graph.node(id).op == Op::Unary(Activation::Relu));
        let linear = Instr::Linear {
            matmul,
            bias_add,
            act: act.map(|(_, id, _)| id),
            recompute,
        };
        // The buffer it makes is the last op's, in that op's category.
        fused_at[k] = Some((linear, act.map_or(j, |(l, _, _)| l)));
        for d in [Some(j), freed_at[k]] {
            dropped[d.expect("checked above")] = true;
        }
        if let Some((l, _, _)) = act {
            dropped[l] = true;
            dropped[freed_at[j].expect("a sole reader's buffer is freed")] = true;
        }
    }

    let mut out = Schedule {
        instrs: Vec::with_capacity(n),
        category: Vec::with_capacity(n),
        outputs: schedule.outputs.clone(),
        storage: schedule.storage.clone(),
    };
    for k in 0..n {
        if dropped[k] {
            continue;
        }
        match fused_at[k] {
            Some((linear, at)) => {
                out.instrs.push(linear);
                out.category.push(schedule.category[at]);
            }
            None => {
                out.instrs.push(schedule.instrs[k]);
                out.category.push(schedule.category[k]);
            }
        }
    }
    out
}

/// Whether `node` is `matmul + b` with `b` a parameter vector, one value per output column.
fn is_bias_add(graph: &Graph, node: NodeId, matmul: NodeId) -> bool {
    let n = graph.node(node);
    let [a, b] = n.inputs[..] else { return false };
    n.op == Op::Add
        && a == matmul
        && matches!(graph.node(b).op, Op::Leaf(Leaf::Parameter { .. }))
        && graph.shape(b).dims() == [graph.shape(matmul).dims()[1]]
}
