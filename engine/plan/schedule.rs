//! Stage 2 of planning: the schedule, a straight list of instructions the executor
//! follows, made from the graph and a keep set before anything runs. A checkpoint plan only says which forward outputs stay alive
//! until backward; a dropped one is recomputed (with its dropped inputs, recursively)
//! right before the first backward node that reads it, and freeing follows from liveness.
//! So walking the schedule with sizes instead of data predicts the peak memory exactly.

use crate::graph::{Graph, Leaf, NodeId, Phase};
use crate::memory::Category;
use crate::ops::Op;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Instr {
    /// Run the node's op (or take its bound data, for an input) into a new buffer.
    Compute(NodeId),
    /// Run a forward node again during backward, because its output was not kept.
    Recompute(NodeId),
    /// Drop a buffer after its last use.
    Free(NodeId),
    /// A Linear layer in one step (made by [`super::fusion`]): `act(x·op(w) + b)` into the
    /// buffer of `act` (or of `bias_add` without one); the product and, with `act`, the
    /// pre-activation are never stored.
    Linear {
        matmul: NodeId,
        bias_add: NodeId,
        act: Option<NodeId>,
        recompute: bool,
    },
    /// Apply the optimizer to parameter `param` with its complete gradient `grad`, in place
    /// (made by [`super::updates`]); a step whose `loss` is not finite changes nothing.
    Update { param: NodeId, grad: NodeId, loss: NodeId },
}

impl Instr {
    /// The node whose buffer this instruction makes, if it makes one.
    pub fn makes(&self) -> Option<NodeId> {
        match *self {
            Instr::Compute(id) | Instr::Recompute(id) => Some(id),
            Instr::Linear { bias_add, act, .. } => Some(act.unwrap_or(bias_add)),
            Instr::Free(_) | Instr::Update { .. } => None,
        }
    }

    /// The nodes whose ops this instruction runs (no allocation: schedules run to millions).
    pub fn runs(&self) -> impl Iterator<Item = NodeId> + Clone {
        let nodes = match *self {
            Instr::Compute(id) | Instr::Recompute(id) => [Some(id), None, None],
            Instr::Linear {
                matmul, bias_add, act, ..
            } => [Some(matmul), Some(bias_add), act],
            Instr::Free(_) | Instr::Update { .. } => [None, None, None],
        };
        nodes.into_iter().flatten()
    }

    pub fn is_recompute(&self) -> bool {
        matches!(self, Instr::Recompute(_) | Instr::Linear { recompute: true, .. })
    }
}

/// How a tensor of a schedule is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Storage {
    #[default]
    F32,
    /// The step's 16-bit type (bf16 or f16, the device's `--dtype`).
    Half,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub instrs: Vec<Instr>,
    /// The memory category of each instruction's buffer (unused for `Free`).
    pub category: Vec<Category>,
    pub outputs: Vec<NodeId>,
    /// How each node's tensor is stored, by node (all f32 unless [`super::precision::store_16bit`]).
    pub storage: Vec<Storage>,
}

/// Which forward outputs stay alive until backward reads them: `kept[node]`. Leaves and
/// parameters are always available; a forward node that is not kept is recomputed.
#[derive(Clone, Debug, PartialEq)]
pub struct KeepSet {
    pub kept: Vec<bool>,
}

impl KeepSet {
    pub fn everything(graph: &Graph) -> Self {
        KeepSet {
            kept: vec![true; graph.len()],
        }
    }
}

fn is_param(graph: &Graph, id: NodeId) -> bool {
    matches!(graph.node(id).op, Op::Leaf(Leaf::Parameter { .. }))
}

fn is_backward(graph: &Graph, id: NodeId) -> bool {
    graph.node(id).phase == Phase::Backward
}

impl Schedule {
    /// Computes every node `outputs` need in graph order; before each backward node,
    /// recomputes the forward nodes it reads that `keep` dropped. `gradients` (a subset of
    /// `outputs`) are counted as gradients. Nothing is fused yet ([`super::fusion`] is the
    /// next stage).
    pub fn build(graph: &Graph, outputs: &[NodeId], gradients: &[NodeId], keep: &KeepSet) -> Schedule {
        let needed = graph.ancestors(outputs);
        let mut order: Vec<Instr> = Vec::new();
        let mut recomputed = vec![false; graph.len()];
        for i in (0..graph.len()).filter(|&i| needed[i]) {
            let id = NodeId(i);
            if is_param(graph, id) {
                continue;
            }
            if is_backward(graph, id) {
                for &x in &graph.node(id).inputs {
                    ensure(graph, keep, x, &mut recomputed, &mut order);
                }
            }
            order.push(Instr::Compute(id));
        }
        Self::with_frees(graph, order, outputs, gradients)
    }

    /// A schedule that runs `order` (computes and recomputes, as a nested plan lowers to:
    /// [`super::nesting::lower`]), freeing each buffer after its last use.
    pub fn from_order(graph: &Graph, order: Vec<Instr>, outputs: &[NodeId], gradients: &[NodeId]) -> Schedule {
        Self::with_frees(graph, order, outputs, gradients)
    }

    /// Inserts a `Free` after the last use of every buffer and assigns categories.
    fn with_frees(graph: &Graph, order: Vec<Instr>, outputs: &[NodeId], gradients: &[NodeId]) -> Schedule {
        let n = order.len();
        let mut instance = vec![usize::MAX; graph.len()];
        let mut last_use = vec![None; n];
        let mut read_in_backward = vec![false; n];
        for (k, instr) in order.iter().enumerate() {
            let (id, in_backward) = match *instr {
                Instr::Compute(id) => (id, is_backward(graph, id)),
                Instr::Recompute(id) => (id, true),
                Instr::Free(_) | Instr::Linear { .. } | Instr::Update { .. } => {
                    unreachable!("frees are inserted, and fusion and updates done, later")
                }
            };
            for &x in &graph.node(id).inputs {
                if let Some(&src) = instance.get(x.0).filter(|&&s| s != usize::MAX) {
                    last_use[src] = Some(k);
                    read_in_backward[src] |= in_backward;
                }
            }
            instance[id.0] = k;
        }
        // Membership by node, not by search: a deep net has thousands of gradients.
        let (mut is_output, mut is_gradient) = (vec![false; graph.len()], vec![false; graph.len()]);
        for o in outputs {
            is_output[o.0] = true;
        }
        for g in gradients {
            is_gradient[g.0] = true;
        }
        // (instruction a buffer dies after, the buffer), in schedule order once sorted: one flat
        // list, not a vector per instruction (a nested plan has millions).
        let mut frees: Vec<(usize, NodeId)> = Vec::with_capacity(n);
        let mut category = Vec::with_capacity(n);
        for (k, instr) in order.iter().enumerate() {
            let (id, recompute) = match *instr {
                Instr::Compute(id) => (id, false),
                Instr::Recompute(id) => (id, true),
                Instr::Free(_) | Instr::Linear { .. } | Instr::Update { .. } => unreachable!(),
            };
            let final_output = is_output[id.0] && instance[id.0] == k;
            if !final_output {
                frees.push((last_use[k].unwrap_or(k), id));
            }
            category.push(if is_gradient[id.0] {
                Category::Gradients
            } else if recompute {
                Category::Recomputed
            } else if !is_backward(graph, id) && read_in_backward[k] {
                Category::SavedActivations
            } else {
                Category::Temporaries
            });
        }
        // Grouped by instruction with a counting sort, stable: buffers dying after the same
        // instruction are freed in the order they were made.
        let mut start = vec![0usize; n + 1];
        for &(at, _) in &frees {
            start[at + 1] += 1;
        }
        for k in 0..n {
            start[k + 1] += start[k];
        }
        let mut grouped = vec![NodeId(0); frees.len()];
        let mut fill = start.clone();
        for &(at, id) in &frees {
            grouped[fill[at]] = id;
            fill[at] += 1;
        }
        let mut instrs = Vec::with_capacity(n + frees.len());
        let mut cats = Vec::with_capacity(n + frees.len());
        for (k, instr) in order.into_iter().enumerate() {
            instrs.push(instr);
            cats.push(category[k]);
            for &f in &grouped[start[k]..start[k + 1]] {
                instrs.push(Instr::Free(f));
                cats.push(Category::Temporaries);
            }
        }
        Schedule {
            instrs,
            category: cats,
            outputs: outputs.to_vec(),
            storage: vec![Storage::F32; graph.len()],
        }
    }
}

/// Makes `x` available before a backward node reads it, recomputing it (after its own
/// dropped inputs) if the keep set dropped it and it has not been recomputed yet.
fn ensure(graph: &Graph, keep: &KeepSet, x: NodeId, recomputed: &mut [bool], order: &mut Vec<Instr>) {
    let node = graph.node(x);
    if node.op.is_leaf() || keep.kept[x.0] || is_backward(graph, x) || recomputed[x.0] {
        return;
    }
    for &y in &node.inputs {
        ensure(graph, keep, y, recomputed, order);
    }
    order.push(Instr::Recompute(x));
    recomputed[x.0] = true;
}
