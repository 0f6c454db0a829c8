//! The checkpointing planner: which forward outputs to keep for backward, chosen on the
//! traced graph (not a hand-written layer list).
//!
//! - `none` keeps everything backward reads.
//! - `cheap` drops the outputs of cheap ops (activations, bias adds, dropout) and keeps
//!   matrix products, so only cheap work is redone.
//! - `sqrt` and `every:K` cut the chain at layer boundaries (tensors every path from the
//!   input to the loss goes through, feeding a matrix product) and keep only every K-th
//!   boundary (K ≈ √n for `sqrt`); backward recomputes one segment at a time.
//! - `budget:SIZE` simulates candidate plans (none, cheap, every segment count) and takes
//!   the one with the least recomputation whose predicted peak fits.

use crate::graph::{Graph, NodeId, Phase};
use crate::memory::{Bytes, MemoryReport};
use crate::ops::{self, Op, RecomputeClass};
use crate::schedule::{KeepSet, Schedule};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum CheckpointPolicy {
    #[default]
    None,
    Cheap,
    Sqrt,
    Every(usize),
    Budget(u64),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("--checkpoint '{spec}': {why}")]
    Parse { spec: String, why: String },
    #[error(
        "no checkpoint plan fits the budget of {}: the smallest predicted peak is {} ({}); use budget:{} or more, or a smaller batch",
        Bytes(*budget), Bytes(*smallest), policy, smallest
    )]
    OverBudget { budget: u64, smallest: u64, policy: String },
}

/// Parses sizes like `1.5GiB`, `800MB`, `123456` (bytes).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.trim().parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024f64.powi(4),
        _ => return None,
    };
    (v >= 0.0 && v.is_finite()).then_some((v * mult) as u64)
}

impl std::str::FromStr for CheckpointPolicy {
    type Err = PlanError;
    fn from_str(spec: &str) -> Result<Self, PlanError> {
        let err = |why: &str| PlanError::Parse {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        match spec.split_once(':') {
            None => match spec {
                "none" => Ok(CheckpointPolicy::None),
                "cheap" => Ok(CheckpointPolicy::Cheap),
                "sqrt" => Ok(CheckpointPolicy::Sqrt),
                _ => Err(err(
                    "expected none, cheap, sqrt, every:K or budget:SIZE (e.g. budget:1.5GiB)",
                )),
            },
            Some(("every", k)) => match k.parse::<usize>() {
                Ok(k) if k >= 1 => Ok(CheckpointPolicy::Every(k)),
                _ => Err(err("every:K needs a whole number K >= 1")),
            },
            Some(("budget", size)) => parse_bytes(size)
                .map(CheckpointPolicy::Budget)
                .ok_or_else(|| err("budget:SIZE needs a size such as 1.5GiB, 800MB or 123456")),
            Some(_) => Err(err("expected none, cheap, sqrt, every:K or budget:SIZE")),
        }
    }
}

impl fmt::Display for CheckpointPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointPolicy::None => f.write_str("none"),
            CheckpointPolicy::Cheap => f.write_str("cheap"),
            CheckpointPolicy::Sqrt => f.write_str("sqrt"),
            CheckpointPolicy::Every(k) => write!(f, "every:{k}"),
            CheckpointPolicy::Budget(b) => write!(f, "budget:{}", Bytes(*b).to_string().replace(' ', "")),
        }
    }
}

/// A chosen plan with its predictions.
#[derive(Clone, Debug)]
pub struct Plan {
    /// What was asked for.
    pub policy: CheckpointPolicy,
    /// The concrete plan taken (a budget resolves to one of the others).
    pub chosen: CheckpointPolicy,
    pub keep: KeepSet,
    pub schedule: Schedule,
    /// Segment boundaries kept (segment policies only).
    pub boundaries: Vec<NodeId>,
    /// Every layer boundary the graph offers.
    pub candidates: Vec<NodeId>,
    pub predicted: MemoryReport,
    pub flops: u64,
    pub recompute_flops: u64,
}

impl Plan {
    pub fn recompute_fraction(&self) -> f64 {
        self.recompute_flops as f64 / (self.flops - self.recompute_flops).max(1) as f64
    }
}

/// Forward non-leaf nodes through which every forward path passes and that feed a matrix
/// product: the places a chain of layers can be cut.
pub fn layer_boundaries(graph: &Graph, outputs: &[NodeId]) -> Vec<NodeId> {
    let needed = graph.ancestors(outputs);
    let fwd: Vec<usize> = (0..graph.len())
        .filter(|&i| needed[i] && graph.node(NodeId(i)).phase != Phase::Backward && !graph.node(NodeId(i)).op.is_leaf())
        .collect();
    let mut pos = vec![usize::MAX; graph.len()];
    for (p, &i) in fwd.iter().enumerate() {
        pos[i] = p;
    }
    // reach[p]: the furthest forward position any node before p feeds.
    let mut furthest_from = vec![0usize; fwd.len()];
    let consumers = graph.consumers();
    for (p, &i) in fwd.iter().enumerate() {
        furthest_from[p] = consumers[i]
            .iter()
            .map(|c| pos[c.0])
            .filter(|&q| q != usize::MAX)
            .max()
            .unwrap_or(p);
    }
    let mut cuts = Vec::new();
    let mut reach = 0;
    for (p, &i) in fwd.iter().enumerate() {
        let feeds_matmul = consumers[i]
            .iter()
            .any(|c| graph.node(*c).phase != Phase::Backward && matches!(graph.node(*c).op, Op::MatMul { .. }));
        if reach <= p && feeds_matmul && p + 1 < fwd.len() {
            cuts.push(NodeId(i));
        }
        reach = reach.max(furthest_from[p]);
    }
    cuts
}

fn keep_for(graph: &Graph, policy: CheckpointPolicy, candidates: &[NodeId]) -> (KeepSet, Vec<NodeId>) {
    let mut keep = KeepSet::everything(graph);
    match policy {
        CheckpointPolicy::None | CheckpointPolicy::Budget(_) => (keep, Vec::new()),
        CheckpointPolicy::Cheap => {
            for (i, node) in graph.nodes().iter().enumerate() {
                if node.phase == Phase::Backward || node.op.is_leaf() {
                    continue;
                }
                let shapes: Vec<_> = node.inputs.iter().map(|&x| graph.shape(x)).collect();
                if ops::cost(&node.op, &shapes, &node.shape, 4).recompute == RecomputeClass::Cheap {
                    keep.kept[i] = false;
                }
            }
            (keep, Vec::new())
        }
        CheckpointPolicy::Sqrt | CheckpointPolicy::Every(_) => {
            let n = candidates.len();
            let k = match policy {
                CheckpointPolicy::Every(k) => k,
                _ => ((n + 1) as f64).sqrt().round().max(1.0) as usize,
            };
            let boundaries: Vec<NodeId> = candidates.iter().copied().skip(k - 1).step_by(k).collect();
            // Drop every forward node before the last kept boundary but the boundaries; the
            // last segment is needed at once by backward, so recomputing it would be waste.
            if let Some(&last) = boundaries.last() {
                for (i, node) in graph.nodes().iter().enumerate().take(last.0) {
                    if node.phase != Phase::Backward && !node.op.is_leaf() && !boundaries.contains(&NodeId(i)) {
                        keep.kept[i] = false;
                    }
                }
            }
            (keep, boundaries)
        }
    }
}

fn make(
    graph: &Graph,
    outputs: &[NodeId],
    gradients: &[NodeId],
    resident: &MemoryReport,
    policy: CheckpointPolicy,
    chosen: CheckpointPolicy,
    candidates: &[NodeId],
) -> Plan {
    let (keep, boundaries) = keep_for(graph, chosen, candidates);
    let schedule = Schedule::build_with(graph, outputs, gradients, &keep);
    let predicted = schedule.predict(graph, resident);
    let (flops, recompute_flops) = schedule.flops(graph);
    Plan {
        policy,
        chosen,
        keep,
        schedule,
        boundaries,
        candidates: candidates.to_vec(),
        predicted,
        flops,
        recompute_flops,
    }
}

/// The plans a budget chooses among: none, cheap, and one `every:K` per distinct segment count.
pub fn candidate_plans(graph: &Graph, outputs: &[NodeId], gradients: &[NodeId], resident: &MemoryReport) -> Vec<Plan> {
    let candidates = layer_boundaries(graph, outputs);
    let n = candidates.len();
    let mut ks: Vec<usize> = (1..=n.max(1)).map(|segments| n.div_ceil(segments).max(1)).collect();
    ks.sort_unstable();
    ks.dedup();
    let mut policies = vec![CheckpointPolicy::None, CheckpointPolicy::Cheap];
    policies.extend(ks.into_iter().filter(|&k| k <= n).map(CheckpointPolicy::Every));
    policies
        .into_iter()
        .map(|p| make(graph, outputs, gradients, resident, p, p, &candidates))
        .collect()
}

/// Plans one training step. `resident` holds the bytes live before the step (parameters,
/// optimizer state), which a budget must include.
pub fn plan_checkpoints(
    graph: &Graph,
    outputs: &[NodeId],
    gradients: &[NodeId],
    policy: CheckpointPolicy,
    resident: &MemoryReport,
) -> Result<Plan, PlanError> {
    let CheckpointPolicy::Budget(budget) = policy else {
        let candidates = layer_boundaries(graph, outputs);
        return Ok(make(graph, outputs, gradients, resident, policy, policy, &candidates));
    };
    let plans = candidate_plans(graph, outputs, gradients, resident);
    let best = plans
        .iter()
        .filter(|p| p.predicted.peak_total <= budget)
        .min_by_key(|p| (p.recompute_flops, p.predicted.peak_total));
    match best {
        Some(p) => Ok(Plan { policy, ..p.clone() }),
        None => {
            let smallest = plans
                .iter()
                .min_by_key(|p| p.predicted.peak_total)
                .expect("none is always a candidate");
            Err(PlanError::OverBudget {
                budget,
                smallest: smallest.predicted.peak_total,
                policy: smallest.chosen.to_string(),
            })
        }
    }
}

/// Pareto frontier of (peak, recompute) among the candidate plans, smallest peak first.
pub fn frontier(plans: &[Plan]) -> Vec<&Plan> {
    let mut sorted: Vec<&Plan> = plans.iter().collect();
    sorted.sort_by_key(|p| (p.predicted.peak_total, p.recompute_flops));
    // Walking up in memory, a plan belongs when it buys less recomputation than all before it.
    let mut out: Vec<&Plan> = Vec::new();
    for p in sorted {
        if out.last().is_none_or(|q| p.recompute_flops < q.recompute_flops) {
            out.push(p);
        }
    }
    out
}

/// What happens to each forward tensor under a plan, for `chainrule plan --explain`.
pub fn fates(graph: &Graph, plan: &Plan) -> Vec<(NodeId, &'static str, u64, &'static str)> {
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
        } else if let (Some(id), crate::memory::Category::SavedActivations) = (instr.makes(), *cat) {
            saved[id.0] = true;
        }
    }
    (0..graph.len())
        .filter(|&i| {
            graph.node(NodeId(i)).phase == Phase::Forward
                && !matches!(graph.node(NodeId(i)).op, Op::Leaf(crate::graph::Leaf::Parameter { .. }))
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
            (NodeId(i), graph.node(NodeId(i)).op.name(), graph.bytes(NodeId(i)), fate)
        })
        .collect()
}
