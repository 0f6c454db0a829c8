//! What each block of a nested plan ([`super::nesting::Block`]) costs: its time, the most
//! memory it adds while it runs and what it leaves behind, over the live bytes it starts
//! from. These are read, not modeled: a few probe plans that between them run every block
//! in each of its contexts go through the whole pipeline (frees, fusion, 16-bit storage,
//! updates inside backward) and the exact walk, and each block's share of the walk is
//! taken. A block's effect does not depend on the plan around it (what it frees is fixed by
//! its kind: a chain pass that keeps its input or not, a tape, a backward block), so sums
//! of these numbers are the exact peak of any plan; the planner's tests check that they are.

use super::chain::Chain;
use super::nesting::{lower, nodes_of, Block, Nest};
use super::schedule::Schedule;
use super::StepKind;
use crate::graph::{Graph, NodeId};
use std::collections::HashMap;

/// "Adds nothing while it runs": a block with no instruction.
pub const NOTHING: i64 = i64::MIN / 4;

/// One block's (or a sequence's) effect on live bytes, and its time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Effect {
    /// The most live while it runs, over where it started ([`NOTHING`] if it runs nothing).
    pub most: i64,
    /// Live after it, over where it started.
    pub net: i64,
    pub seconds: f64,
}

impl Effect {
    pub const EMPTY: Effect = Effect {
        most: NOTHING,
        net: 0,
        seconds: 0.0,
    };

    /// This, then `next`.
    pub fn then(self, next: Effect) -> Effect {
        Effect {
            most: self.most.max(self.net + next.most),
            net: self.net + next.net,
            seconds: self.seconds + next.seconds,
        }
    }
}

pub struct Profiles {
    blocks: HashMap<Block, Effect>,
    /// The batch and labels, bound before the first stage.
    pub prologue: Effect,
}

impl Profiles {
    pub fn of(&self, block: Block) -> Effect {
        self.blocks.get(&block).copied().unwrap_or(Effect::EMPTY)
    }

    /// A whole nested plan's effect, prologue included: its peak over the resident bytes is
    /// `most`, exactly, without lowering it.
    pub fn effect_of(&self, nest: &Nest) -> Effect {
        let mut e = self.prologue;
        nest.visit(&mut |b| e = e.then(self.of(b)));
        e
    }

    /// Reads every block's effect off probe plans of `chain`.
    pub fn measure(
        graph: &Graph,
        chain: &Chain,
        outputs: &[NodeId],
        gradients: &[NodeId],
        step: &StepKind,
    ) -> Profiles {
        let t = chain.len() - 1;
        let every = |first: usize| (first..=t).step_by(2).collect::<Vec<_>>();
        let probes = [
            Nest::keep_all(0, t),
            Nest::segments(0, t, &(1..=t).collect::<Vec<_>>()),
            Nest::segments(0, t, &every(2)),
            Nest::segments(0, t, &every(1)),
        ];
        let mut blocks = HashMap::new();
        let mut prologue = Effect::EMPTY;
        for probe in &probes {
            for (tag, effect) in block_effects(graph, chain, outputs, gradients, step, probe) {
                match tag {
                    Some(b) => {
                        let seconds = nodes_of(chain, b).iter().map(|&id| step.rates.seconds(graph, id)).sum();
                        blocks.entry(b).or_insert(Effect { seconds, ..effect });
                    }
                    None => prologue = effect,
                }
            }
        }
        Profiles { blocks, prologue }
    }
}

/// Each block occurrence of `plan`'s schedule, in order, with its effect on the walk.
fn block_effects(
    graph: &Graph,
    chain: &Chain,
    outputs: &[NodeId],
    gradients: &[NodeId],
    step: &StepKind,
    plan: &Nest,
) -> Vec<(Option<Block>, Effect)> {
    let (order, tags) = lower(graph, chain, plan);
    // The k-th run of a node in the finished schedule is its k-th in the lowered order.
    let mut runs: Vec<Vec<Option<Block>>> = vec![Vec::new(); graph.len()];
    for (instr, tag) in order.iter().zip(&tags) {
        for id in instr.runs() {
            runs[id.0].push(*tag);
        }
    }
    let schedule = super::fuse_store_and_update(graph, Schedule::from_order(graph, order, outputs, gradients), step);
    let levels = schedule.levels(graph, step.layout);
    let mut seen = vec![0usize; graph.len()];
    let mut tag_of = Vec::with_capacity(levels.len());
    let mut tag = None;
    for instr in &schedule.instrs {
        if let Some(first) = instr.runs().next() {
            tag = runs[first.0][seen[first.0]];
        }
        for id in instr.runs() {
            seen[id.0] += 1;
        }
        tag_of.push(tag);
    }
    let mut out = Vec::new();
    let mut start = 0;
    for end in 1..=levels.len() {
        if end < levels.len() && tag_of[end] == tag_of[start] {
            continue;
        }
        let entry = if start == 0 { 0 } else { levels[start - 1].after as i64 };
        let most = levels[start..end].iter().map(|l| l.most as i64).max().unwrap_or(0);
        let effect = Effect {
            most: most - entry,
            net: levels[end - 1].after as i64 - entry,
            seconds: 0.0,
        };
        out.push((tag_of[start], effect));
        start = end;
    }
    out
}
