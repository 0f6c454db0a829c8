//! Reading plans back to a person: the Pareto frontier of a budget's candidates and what
//! happens to each forward tensor (`chainrule plan --frontier`, `--explain`).

use super::{CheckpointPolicy, Plan};
use crate::graph::{Graph, Leaf, NodeId, Phase};
use crate::memory::Category;
use crate::ops::Op;

/// Pareto frontier of (peak, recompute time) among the candidate plans, smallest peak first.
pub fn frontier(plans: &[Plan]) -> Vec<&Plan> {
    let mut sorted: Vec<&Plan> = plans.iter().collect();
    sorted.sort_by(|a, b| {
        a.predicted
            .peak_total
            .cmp(&b.predicted.peak_total)
            .then(a.recompute_seconds.total_cmp(&b.recompute_seconds))
    });
    // Walking up in memory, a plan belongs when it buys less recompute time than all before it.
    let mut out: Vec<&Plan> = Vec::new();
    for p in sorted {
        if out.last().is_none_or(|q| p.recompute_seconds < q.recompute_seconds) {
            out.push(p);
        }
    }
    out
}

/// What happens to each forward tensor under a plan, for `chainrule plan --explain`.
pub struct Fate {
    pub node: NodeId,
    pub op: &'static str,
    /// Bytes as stored (16-bit tensors at their device's size).
    pub bytes: u64,
    pub fate: &'static str,
    /// How many times a step runs the op that makes it (1, plus one per recomputation).
    pub runs: usize,
}

/// Each forward tensor's [`Fate`] under `plan`.
pub fn fates(graph: &Graph, plan: &Plan) -> Vec<Fate> {
    let mut runs = vec![0usize; graph.len()];
    for instr in &plan.schedule.instrs {
        for id in instr.runs() {
            runs[id.0] += 1;
        }
    }
    let mut saved = vec![false; graph.len()];
    let mut recomputed = vec![false; graph.len()];
    // Run inside a fused Linear instruction without being stored.
    let mut fused = vec![false; graph.len()];
    for (instr, cat) in plan.schedule.instrs.iter().zip(&plan.schedule.category) {
        for id in instr.runs() {
            fused[id.0] |= instr.makes() != Some(id);
        }
        if instr.is_recompute() {
            for id in instr.runs() {
                recomputed[id.0] = true;
            }
        } else if let (Some(id), Category::SavedActivations) = (instr.makes(), *cat) {
            saved[id.0] = true;
        }
    }
    (0..graph.len())
        .filter(|&i| {
            graph.node(NodeId(i)).phase == Phase::Forward
                && !matches!(graph.node(NodeId(i)).op, Op::Leaf(Leaf::Parameter { .. }))
        })
        .map(|i| {
            let fate = if plan.boundaries.contains(&NodeId(i)) {
                "kept (segment boundary)"
            } else if saved[i] {
                "kept"
            } else if recomputed[i] {
                "dropped, recomputed in backward"
            } else if fused[i] {
                "never stored (fused into its Linear layer)"
            } else {
                "freed after its forward use"
            };
            let id = NodeId(i);
            let bytes = plan.schedule.stored_bytes(graph, id, plan.layout);
            Fate {
                node: id,
                op: graph.node(id).op.name(),
                bytes,
                fate,
                runs: runs[i],
            }
        })
        .collect()
}

/// The plan a policy came to, in words: a budget that the nested planner answered is
/// `nested`, anything else its concrete policy.
pub fn chosen_name(plan: &Plan) -> String {
    match (plan.policy, &plan.nest) {
        (CheckpointPolicy::Budget(_), Some(_)) => "nested".to_string(),
        _ => plan.chosen.to_string(),
    }
}

/// How many times each layer's forward runs in a step under `plan` (its ops' most runs),
/// layers counted from the first; the schedule's own count, so a layer whose tape is empty
/// (ReLU with no dropout keeps only the next layer's input) is not counted twice.
pub fn layer_runs(graph: &Graph, plan: &Plan) -> Vec<usize> {
    let runs = plan.forward_runs(graph);
    let mut layers = vec![0usize; plan.candidates.len() + 1];
    let mut layer = 0;
    for (i, node) in graph.nodes().iter().enumerate() {
        if node.phase == Phase::Backward || node.op.is_leaf() {
            continue;
        }
        layers[layer] = layers[layer].max(runs[i]);
        if plan.candidates.get(layer) == Some(&NodeId(i)) {
            layer += 1;
        }
    }
    layers
}

/// [`layer_runs`] as runs of equal counts, `1-16 x2, 17-31 x1`, for plans that recompute.
pub fn forward_runs_by_layer(graph: &Graph, plan: &Plan) -> Option<String> {
    if plan.recompute_flops == 0 {
        return None;
    }
    let runs = layer_runs(graph, plan);
    let mut parts = Vec::new();
    let mut start = 0;
    for end in 1..=runs.len() {
        if end == runs.len() || runs[end] != runs[start] {
            let span = match end - start {
                1 => format!("{}", start + 1),
                _ => format!("{}-{}", start + 1, end),
            };
            parts.push(format!("{span} x{}", runs[start]));
            start = end;
        }
    }
    Some(parts.join(", "))
}
