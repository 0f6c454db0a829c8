//! A differentiated graph read as a chain of stages, the shape nested checkpointing plans
//! over. Stage k runs from boundary `a_k` (the data for k = 0; a layer boundary,
//! [`super::layer_boundaries`], after it) to `a_{k+1}`; its backward block reads only
//! `a_k` and the stage's own tensors (never `a_{k+1}`, which the next block reads). Each
//! stage can be run forward three ways:
//!
//! - `chain`: only what makes `a_{k+1}` (a pass that keeps nothing for backward);
//! - `all`: that and everything its backward block reads (its tape), all kept;
//! - `last`: only the tape (the stage's backward comes next, `a_{k+1}` is not needed).
//!
//! A graph that is not such a chain (a branch, a tensor read across stages) gets `None`,
//! and its budget is planned over the single-level policies alone.

use crate::graph::{Graph, Leaf, NodeId, Phase};
use crate::ops::Op;

/// One stage of a [`Chain`]: forward node lists in graph order.
#[derive(Clone, Debug)]
pub struct Stage {
    pub chain: Vec<NodeId>,
    pub all: Vec<NodeId>,
    pub last: Vec<NodeId>,
    /// The stage's backward block, in graph order.
    pub backward: Vec<NodeId>,
}

#[derive(Clone, Debug)]
pub struct Chain {
    /// Forward leaves bound or made before the first stage (the batch, the labels).
    pub prologue: Vec<NodeId>,
    pub stages: Vec<Stage>,
}

impl Chain {
    /// The graph as a chain, or `None` if it is not one.
    pub fn of(graph: &Graph, outputs: &[NodeId]) -> Option<Chain> {
        let needed = graph.ancestors(outputs);
        let boundaries = super::layer_boundaries(graph, outputs);
        let n = boundaries.len();
        let is_fwd = |i: usize| graph.node(NodeId(i)).phase != Phase::Backward;
        let is_param = |i: usize| matches!(graph.node(NodeId(i)).op, Op::Leaf(Leaf::Parameter { .. }));
        // The stage of each needed forward non-leaf node: boundaries passed before it.
        let mut stage = vec![usize::MAX; graph.len()];
        let mut input = vec![None; n + 1];
        let mut k = 0;
        for i in (0..graph.len()).filter(|&i| needed[i] && is_fwd(i) && !graph.node(NodeId(i)).op.is_leaf()) {
            stage[i] = k;
            if boundaries.get(k) == Some(&NodeId(i)) {
                k += 1;
                input[k] = Some(NodeId(i));
            }
        }
        let leaf = |i: usize| graph.node(NodeId(i)).op.is_leaf();
        let consumers = graph.consumers();
        // A forward leaf (the batch, the labels) may be read by backward only down to the lowest
        // stage that reads it forward: it must die in a block every plan runs once.
        let lowest_reader: Vec<usize> = (0..graph.len())
            .map(|i| {
                consumers[i]
                    .iter()
                    .filter(|c| needed[c.0] && is_fwd(c.0))
                    .map(|c| stage[c.0])
                    .min()
                    .unwrap_or(n)
            })
            .collect();
        let next_input = |s: usize| input.get(s + 1).copied().flatten();
        let readable = |x: NodeId, s: usize| match (leaf(x.0), is_fwd(x.0)) {
            (true, true) => is_param(x.0) || s <= lowest_reader[x.0],
            (_, false) => true,
            (false, true) => input[s] == Some(x) || (stage[x.0] == s && next_input(s) != Some(x)),
        };
        // Backward blocks: each node joins the highest stage it can read from, never rising.
        let mut backward = vec![Vec::new(); n + 1];
        let mut current = n;
        for i in (0..graph.len()).filter(|&i| needed[i] && !is_fwd(i)) {
            let inputs = &graph.node(NodeId(i)).inputs;
            let fits = |s: usize| inputs.iter().all(|&x| readable(x, s));
            current = (0..=current).rev().find(|&s| fits(s))?;
            backward[current].push(NodeId(i));
        }
        // Each block past the first reads its input (so the input dies there, whatever the plan).
        for (s, block) in backward.iter().enumerate().skip(1) {
            let reads = |b: &NodeId| graph.node(*b).inputs.contains(&input[s].expect("a boundary"));
            if !block.iter().any(reads) {
                return None;
            }
        }
        let mut is_output = vec![false; graph.len()];
        for o in outputs {
            is_output[o.0] = true;
        }
        let prologue: Vec<NodeId> = (0..graph.len())
            .filter(|&i| needed[i] && is_fwd(i) && leaf(i) && !is_param(i))
            .map(NodeId)
            .collect();
        // One that backward never reads dies in its last forward read: only the last stage,
        // which every plan runs once, may read it.
        let read_by_backward = |x: &NodeId| consumers[x.0].iter().any(|c| needed[c.0] && !is_fwd(c.0));
        if prologue.iter().any(|x| !read_by_backward(x) && lowest_reader[x.0] < n) {
            return None;
        }
        let stages = (0..=n)
            .map(|s| {
                let own: Vec<usize> = (0..graph.len()).filter(|&i| stage[i] == s).collect();
                let tape: Vec<usize> = backward[s]
                    .iter()
                    .flat_map(|b| graph.node(*b).inputs.iter().map(|x| x.0))
                    .filter(|&x| stage[x] == s)
                    .chain(own.iter().copied().filter(|&i| is_output[i]))
                    .collect();
                let next: Vec<usize> = input.get(s + 1).copied().flatten().map(|b| b.0).into_iter().collect();
                let within = |roots: &[usize]| ancestors_within(graph, &stage, s, roots);
                let both: Vec<usize> = tape.iter().chain(&next).copied().collect();
                Some(Stage {
                    chain: within(&next),
                    all: within(&both),
                    last: within(&tape),
                    backward: backward[s].clone(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Chain { prologue, stages })
    }

    /// Stages in the chain.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }
}

/// The nodes of stage `s` that `roots` need, in graph order.
fn ancestors_within(graph: &Graph, stage: &[usize], s: usize, roots: &[usize]) -> Vec<NodeId> {
    let mut want = vec![false; graph.len()];
    for &r in roots {
        want[r] = true;
    }
    let mut out = Vec::new();
    for i in (0..graph.len()).rev() {
        if want[i] && stage[i] == s {
            out.push(NodeId(i));
            for x in &graph.node(NodeId(i)).inputs {
                want[x.0] = true;
            }
        }
    }
    out.reverse();
    out
}
