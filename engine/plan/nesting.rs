//! Nested (multi-level) checkpointing plans over a [`Chain`], and how one becomes an
//! instruction order. A plan for stages `s..=t` (with `a_s` alive and the gradient from
//! stage t+1 in hand) is one of:
//!
//! - [`Nest::Last`] (s = t): run stage s keeping its tape, then its backward;
//! - [`Nest::Keep`]: run stage s keeping its tape, plan `s+1..=t`, then stage s's backward;
//! - [`Nest::Split`]: run stages `s..at` keeping nothing, so `a_at` becomes a checkpoint;
//!   plan `at..=t`, then plan `s..at` again from `a_s` (its forward runs once more).
//!
//! Every single-level policy is such a plan (a split at each kept boundary), and splits
//! inside splits recompute a stage more than once: the nesting of Beaumont et al.'s
//! heterogeneous-chain solver and of Griewank and Walther's binomial checkpointing.

use super::chain::Chain;
use super::schedule::Instr;
use crate::graph::{Graph, NodeId};

#[derive(Clone, Debug, PartialEq)]
pub enum Nest {
    Last(usize),
    Keep(usize, Box<Nest>),
    Split {
        from: usize,
        at: usize,
        right: Box<Nest>,
        left: Box<Nest>,
    },
}

/// A run of one stage, or its backward: the blocks a nested plan is made of.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Block {
    /// Forward to the next input, keeping this stage's input (a checkpoint or the data).
    ChainKeep(usize),
    /// Forward to the next input; the input dies here.
    ChainDrop(usize),
    All(usize),
    Last(usize),
    Backward(usize),
}

impl Nest {
    /// The blocks of this plan in the order they run (its first stage's input held).
    pub fn blocks(&self, out: &mut Vec<Block>) {
        self.visit(&mut |b| out.push(b));
    }

    /// Hands each block of this plan to `f`, in the order they run.
    pub fn visit(&self, f: &mut impl FnMut(Block)) {
        match self {
            Nest::Last(s) => {
                f(Block::Last(*s));
                f(Block::Backward(*s));
            }
            Nest::Keep(s, rest) => {
                f(Block::All(*s));
                rest.visit(f);
                f(Block::Backward(*s));
            }
            Nest::Split { from, at, right, left } => {
                f(Block::ChainKeep(*from));
                (from + 1..*at).for_each(|s| f(Block::ChainDrop(s)));
                right.visit(f);
                left.visit(f);
            }
        }
    }

    /// Instructions (node runs) the plan lowers to over `chain`, before frees.
    pub fn node_runs(&self, chain: &Chain) -> usize {
        let mut runs = 0;
        self.visit(&mut |b| runs += nodes_of(chain, b).len());
        runs
    }

    /// The plan as nested brackets, for `plan --explain`: `[s..t | ...]` a segment run from
    /// its checkpoint `a_s`, `k+` a stage whose tape is kept, `k` the last stage of a segment.
    pub fn brackets(&self) -> String {
        match self {
            Nest::Last(s) => s.to_string(),
            Nest::Keep(s, rest) => format!("{s}+ {}", rest.brackets()),
            Nest::Split { from, at, right, left } => {
                let run = match at - 1 == *from {
                    true => from.to_string(),
                    false => format!("{from}..{}", at - 1),
                };
                format!("{run}>{at} [{}] {}", right.brackets(), left.brackets())
            }
        }
    }

    /// The stages whose input this plan makes a checkpoint (split points, `a_at`).
    pub fn checkpoints(&self, out: &mut Vec<usize>) {
        match self {
            Nest::Last(_) => {}
            Nest::Keep(_, rest) => rest.checkpoints(out),
            Nest::Split { at, right, left, .. } => {
                out.push(*at);
                right.checkpoints(out);
                left.checkpoints(out);
            }
        }
    }

    /// The plan that keeps every stage's tape (no recomputation), for stages `s..=t`.
    pub fn keep_all(s: usize, t: usize) -> Nest {
        (s..t)
            .rev()
            .fold(Nest::Last(t), |rest, k| Nest::Keep(k, Box::new(rest)))
    }

    /// Splits at `cuts` (ascending, inside `s+1..=t`), each segment keeping its tapes: a
    /// single-level plan.
    pub fn segments(s: usize, t: usize, cuts: &[usize]) -> Nest {
        match cuts.split_first() {
            None => Nest::keep_all(s, t),
            Some((&at, rest)) => {
                let right = Nest::segments(at, t, rest);
                Nest::Split {
                    from: s,
                    at,
                    right: Box::new(right),
                    left: Box::new(Nest::keep_all(s, at - 1)),
                }
            }
        }
    }
}

/// The instruction order of `plan` over `chain` (before frees, fusion and the rest of the
/// pipeline), with the block each instruction belongs to (`None`: the prologue).
pub fn lower(graph: &Graph, chain: &Chain, plan: &Nest) -> (Vec<Instr>, Vec<Option<Block>>) {
    let mut blocks = Vec::new();
    plan.blocks(&mut blocks);
    let mut order: Vec<Instr> = chain.prologue.iter().map(|&id| Instr::Compute(id)).collect();
    let mut tags = vec![None; order.len()];
    let mut computed = vec![false; graph.len()];
    for block in blocks {
        for &id in nodes_of(chain, block) {
            order.push(match computed[id.0] {
                true => Instr::Recompute(id),
                false => Instr::Compute(id),
            });
            computed[id.0] = true;
            tags.push(Some(block));
        }
    }
    (order, tags)
}

/// The nodes a block runs, in graph order.
pub fn nodes_of(chain: &Chain, block: Block) -> &[NodeId] {
    match block {
        Block::ChainKeep(s) | Block::ChainDrop(s) => &chain.stages[s].chain,
        Block::All(s) => &chain.stages[s].all,
        Block::Last(s) => &chain.stages[s].last,
        Block::Backward(s) => &chain.stages[s].backward,
    }
}
