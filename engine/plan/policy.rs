//! Stage 1 of planning: the checkpoint policies, which choose the forward outputs a step
//! keeps for backward, on the traced graph (not a hand-written layer list).
//!
//! - `none` keeps everything backward reads.
//! - `cheap` drops the outputs of cheap ops (activations, bias adds, dropout) and keeps
//!   matrix products, so only cheap work is redone.
//! - `sqrt` and `every:K` cut the chain at layer boundaries (tensors every path from the
//!   input to the loss goes through, feeding a matrix product) and keep only every K-th
//!   boundary (K ≈ √n for `sqrt`); backward recomputes one segment at a time.
//! - `revolve:S` is nested: binomial checkpointing with S checkpoints ([`super::revolve`]).
//! - `budget:SIZE` takes the least recompute time among the exact nested planner's plan and
//!   the single-level policies ([`super::budget`]).

use super::schedule::KeepSet;
use crate::graph::{Graph, NodeId, Phase};
use crate::memory::{parse_bytes, Bytes};
use crate::ops::{self, Op, RecomputeClass};
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub enum CheckpointPolicy {
    #[default]
    None,
    Cheap,
    Sqrt,
    Every(usize),
    Budget(u64),
    /// Binomial checkpointing with at most this many checkpoints alive ([`super::revolve`]).
    Revolve(usize),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// A policy that does not parse; the command line names the flag it came from.
    #[error("'{spec}': {why}")]
    Parse { spec: String, why: String },
    #[error(
        "no checkpoint plan fits the budget of {}: the smallest predicted peak is {} ({}); use budget:{} or more, or a smaller batch",
        Bytes(*budget), Bytes(*smallest), policy, Bytes::at_least(*smallest)
    )]
    OverBudget { budget: u64, smallest: u64, policy: String },
    #[error(
        "--checkpoint {policy} would run {runs} ops in one step (over the {} a schedule may hold): give it more checkpoints (a larger S)",
        super::budget::MAX_NODE_RUNS
    )]
    TooMuchRecompute { policy: CheckpointPolicy, runs: usize },
    #[error("--checkpoint {policy} plans over a chain of layers, and this graph is not one (a tensor is read across layers)")]
    NotAChain { policy: CheckpointPolicy },
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
                    "expected none, cheap, sqrt, every:K, revolve:S or budget:SIZE (e.g. budget:1.5GiB)",
                )),
            },
            Some(("every", k)) => match k.parse::<usize>() {
                Ok(k) if k >= 1 => Ok(CheckpointPolicy::Every(k)),
                _ => Err(err("every:K needs a whole number K >= 1")),
            },
            Some(("revolve", k)) => match k.parse::<usize>() {
                Ok(k) if k >= 1 => Ok(CheckpointPolicy::Revolve(k)),
                _ if k.bytes().any(|b| b != b'0') && k.bytes().all(|b| b.is_ascii_digit()) => Err(err(&format!(
                    "revolve:S: {k} checkpoints is more than this machine counts (at most {})",
                    usize::MAX
                ))),
                _ => Err(err("revolve:S needs a whole number of checkpoints S >= 1")),
            },
            Some(("budget", size)) => parse_bytes(size).map(CheckpointPolicy::Budget).ok_or_else(|| {
                err("budget:SIZE needs a size such as 1.5GiB, 800MB or 123456 (whole bytes, below 16 EiB)")
            }),
            Some(_) => Err(err("expected none, cheap, sqrt, every:K, revolve:S or budget:SIZE")),
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
            CheckpointPolicy::Revolve(k) => write!(f, "revolve:{k}"),
            CheckpointPolicy::Budget(b) => write!(f, "budget:{}", Bytes(*b).to_string().replace(' ', "")),
        }
    }
}

/// The places a chain of layers can be cut: forward non-leaf nodes through which every
/// forward path passes (single-tensor cuts), the last such before each matrix product. In a
/// plain chain that is each hidden layer's output (its activation, or dropout); in a
/// residual net, the residual stream between blocks (no tensor inside a block is a cut: the
/// stream itself is read again by the block's sum).
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
    let mut single = Vec::new();
    let mut reach = 0;
    for (p, &furthest) in furthest_from.iter().enumerate() {
        if reach <= p && p + 1 < fwd.len() {
            single.push(p);
        }
        reach = reach.max(furthest);
    }
    // A cut is kept when a matrix product runs after it and no later than the next cut.
    let is_matmul = |p: usize| matches!(graph.node(NodeId(fwd[p])).op, Op::MatMul { .. });
    let mut matmuls_before = vec![0usize; fwd.len() + 1];
    for p in 0..fwd.len() {
        matmuls_before[p + 1] = matmuls_before[p] + usize::from(is_matmul(p));
    }
    let products_in = |from: usize, to: usize| matmuls_before[to] - matmuls_before[from];
    single
        .iter()
        .enumerate()
        .filter(|&(k, &p)| {
            let next = single.get(k + 1).map_or(fwd.len(), |&q| q + 1);
            products_in(p + 1, next) > 0
        })
        .map(|(_, &p)| NodeId(fwd[p]))
        .collect()
}

/// The keep set of a concrete policy (a budget keeps everything: it is resolved by the
/// pipeline before this is asked), and the segment boundaries it keeps.
pub fn keep_for(graph: &Graph, policy: CheckpointPolicy, candidates: &[NodeId]) -> (KeepSet, Vec<NodeId>) {
    let mut keep = KeepSet::everything(graph);
    match policy {
        // Budgets and nested plans are not keep sets: they are planned before this is asked.
        CheckpointPolicy::None | CheckpointPolicy::Budget(_) | CheckpointPolicy::Revolve(_) => (keep, Vec::new()),
        CheckpointPolicy::Cheap => {
            let cheap = cheap_nodes(graph);
            for (i, &c) in cheap.iter().enumerate() {
                keep.kept[i] = !c;
            }
            // Recomputation stays within a layer: a boundary made from an earlier boundary
            // by cheap ops alone (the residual stream, `x + branch`) is kept, or rebuilding
            // it would rebuild the stream back to the first block.
            let mut is_boundary = vec![false; graph.len()];
            for b in candidates {
                is_boundary[b.0] = true;
            }
            for b in candidates {
                if reads_earlier_boundary(graph, *b, &cheap, &is_boundary) {
                    keep.kept[b.0] = true;
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
                let mut is_boundary = vec![false; graph.len()];
                for b in &boundaries {
                    is_boundary[b.0] = true;
                }
                for (i, node) in graph.nodes().iter().enumerate().take(last.0) {
                    if node.phase != Phase::Backward && !node.op.is_leaf() && !is_boundary[i] {
                        keep.kept[i] = false;
                    }
                }
            }
            (keep, boundaries)
        }
    }
}

/// Forward non-leaf nodes whose op is cheap to recompute (activations, bias adds, norms,
/// dropout, sums).
fn cheap_nodes(graph: &Graph) -> Vec<bool> {
    let cheap = |node: &crate::graph::Node| {
        let shapes: Vec<_> = node.inputs.iter().map(|&x| graph.shape(x)).collect();
        ops::cost(&node.op, &shapes, &node.shape, 4).recompute == RecomputeClass::Cheap
    };
    let forward = |node: &crate::graph::Node| node.phase != Phase::Backward && !node.op.is_leaf();
    graph.nodes().iter().map(|n| forward(n) && cheap(n)).collect()
}

/// Whether recomputing `boundary` from kept tensors, through cheap nodes alone, reads
/// another layer boundary.
fn reads_earlier_boundary(graph: &Graph, boundary: NodeId, cheap: &[bool], is_boundary: &[bool]) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<NodeId> = graph.node(boundary).inputs.clone();
    while let Some(x) = stack.pop() {
        if is_boundary[x.0] {
            return true;
        }
        if cheap[x.0] && seen.insert(x) {
            stack.extend(graph.node(x).inputs.iter().copied());
        }
    }
    false
}

/// The concrete policies a budget chooses among: none, cheap, and one `every:K` per
/// distinct segment count over `boundaries` layer boundaries.
pub fn budget_candidates(boundaries: usize) -> Vec<CheckpointPolicy> {
    let n = boundaries;
    let mut ks: Vec<usize> = (1..=n.max(1)).map(|segments| n.div_ceil(segments).max(1)).collect();
    ks.sort_unstable();
    ks.dedup();
    let mut policies = vec![CheckpointPolicy::None, CheckpointPolicy::Cheap];
    policies.extend(ks.into_iter().filter(|&k| k <= n).map(CheckpointPolicy::Every));
    policies
}
