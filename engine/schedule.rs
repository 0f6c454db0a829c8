//! The plan: a straight list of instructions the executor follows, made from the graph
//! before anything runs. Freeing follows from liveness, so walking the schedule with
//! sizes instead of data predicts the peak memory exactly.

use crate::graph::{Graph, Leaf, NodeId, Phase};
use crate::memory::{Category, MemoryReport};
use crate::ops::Op;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Instr {
    /// Run the node's op (or take its bound data, for an input) into a new buffer.
    Compute(NodeId),
    /// Drop a buffer after its last use.
    Free(NodeId),
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub instrs: Vec<Instr>,
    pub outputs: Vec<NodeId>,
    /// The memory category of every node's buffer, indexed by node id.
    pub category: Vec<Category>,
}

impl Schedule {
    /// Computes every node `outputs` need, in graph order, freeing each buffer right after
    /// its last reader. `gradients` (a subset of `outputs`) are counted as gradients.
    pub fn build(graph: &Graph, outputs: &[NodeId], gradients: &[NodeId]) -> Schedule {
        let needed = graph.ancestors(outputs);
        let n = graph.len();
        let is_param = |i: usize| matches!(graph.node(NodeId(i)).op, Op::Leaf(Leaf::Parameter { .. }));

        let mut last_reader = vec![None; n];
        let mut read_by_backward = vec![false; n];
        for (i, node) in graph.nodes().iter().enumerate().filter(|(i, _)| needed[*i]) {
            for x in &node.inputs {
                last_reader[x.0] = Some(i);
                read_by_backward[x.0] |= node.phase == Phase::Backward;
            }
        }
        let category = (0..n)
            .map(|i| {
                let node = graph.node(NodeId(i));
                if is_param(i) {
                    Category::Parameters
                } else if gradients.contains(&NodeId(i)) {
                    Category::Gradients
                } else if node.phase == Phase::Forward && read_by_backward[i] {
                    Category::SavedActivations
                } else {
                    Category::Temporaries
                }
            })
            .collect();

        let mut frees_after: Vec<Vec<NodeId>> = vec![Vec::new(); n];
        for i in (0..n).filter(|&i| needed[i] && !is_param(i) && !outputs.contains(&NodeId(i))) {
            if let Some(r) = last_reader[i] {
                frees_after[r].push(NodeId(i));
            }
        }
        let mut instrs = Vec::new();
        for i in (0..n).filter(|&i| needed[i]) {
            if !is_param(i) {
                instrs.push(Instr::Compute(NodeId(i)));
            }
            instrs.extend(frees_after[i].iter().map(|&x| Instr::Free(x)));
        }
        Schedule {
            instrs,
            outputs: outputs.to_vec(),
            category,
        }
    }

    /// Walks the schedule with sizes instead of data, on top of `resident` bytes (parameters,
    /// optimizer state) already live: the memory one step will use, before it runs.
    pub fn predict(&self, graph: &Graph, resident: &MemoryReport) -> MemoryReport {
        let mut m = *resident;
        m.reset_peak();
        for instr in &self.instrs {
            match *instr {
                Instr::Compute(id) => m.add(self.category[id.0], graph.bytes(id)),
                Instr::Free(id) => m.remove(self.category[id.0], graph.bytes(id)),
            }
        }
        m
    }

    /// How many non-leaf ops one run executes.
    pub fn ops_count(&self, graph: &Graph) -> usize {
        self.instrs
            .iter()
            .filter(|i| matches!(i, Instr::Compute(id) if !graph.node(*id).op.is_leaf()))
            .count()
    }
}
