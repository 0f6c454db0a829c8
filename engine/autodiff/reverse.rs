//! Reverse accumulation (backprop): walk the graph from a scalar loss in reverse
//! topological order, appending each op's vector-Jacobian product, and skip every node
//! whose gradient reaches no requested leaf.

use crate::graph::{Graph, GraphError, NodeId, Phase};
use crate::ops::{self, Op};
use crate::tensor::Shape;

/// The name of the scalar input that seeds a loss-scaled backward pass.
pub const LOSS_SCALE_INPUT: &str = "loss_scale";

/// Appends the backward pass of `loss` to `graph` and returns the gradient node of each
/// `wrt` (a zero constant where `wrt` does not affect the loss).
pub fn backward(graph: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, GraphError> {
    backward_from(graph, loss, wrt, false)
}

/// [`backward`] seeded with the scalar input [`LOSS_SCALE_INPUT`] instead of 1: every
/// gradient comes out multiplied by the value bound there (loss scaling keeps small
/// gradients representable in f16; the optimizer divides the scale back out).
pub fn backward_scaled(graph: &mut Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, GraphError> {
    backward_from(graph, loss, wrt, true)
}

fn backward_from(graph: &mut Graph, loss: NodeId, wrt: &[NodeId], scaled: bool) -> Result<Vec<NodeId>, GraphError> {
    if !graph.shape(loss).is_scalar() {
        return Err(GraphError::BadShape {
            op: "backward",
            shape: graph.shape(loss).clone(),
            why: "the loss must be a scalar".into(),
        });
    }
    let relevant = on_a_path(graph, loss, wrt);
    let n = loss.0 + 1;

    graph.set_phase(Phase::Backward);
    let mut grads: Vec<Option<NodeId>> = vec![None; n];
    grads[loss.0] = Some(if scaled {
        graph.input(LOSS_SCALE_INPUT, Shape::scalar())
    } else {
        graph.fill(1.0, Shape::scalar())
    });
    for i in (0..n).rev() {
        let node = graph.node(NodeId(i));
        if !relevant[i] || node.op.is_leaf() {
            continue;
        }
        let Some(g) = grads[i] else { continue };
        let inputs = node.inputs.clone();
        let wants: Vec<bool> = inputs.iter().map(|x| relevant[x.0]).collect();
        let contributions = ops::vjp(graph, NodeId(i), g, &wants)?;
        for (x, c) in inputs.iter().zip(contributions) {
            let Some(c) = c else { continue };
            // A tensor used by several ops collects the sum of their contributions.
            grads[x.0] = Some(match grads[x.0] {
                None => c,
                Some(acc) => graph.push(Op::Add, &[acc, c])?,
            });
        }
    }
    let result = wrt
        .iter()
        .map(|&w| match grads.get(w.0).copied().flatten() {
            Some(g) => g,
            None => {
                let shape = graph.shape(w).clone();
                graph.fill(0.0, shape)
            }
        })
        .collect();
    graph.set_phase(Phase::Forward);
    Ok(result)
}

/// Nodes that both depend on some `wrt` leaf and feed the loss: the only ones whose
/// backward work is needed.
fn on_a_path(graph: &Graph, loss: NodeId, wrt: &[NodeId]) -> Vec<bool> {
    let n = loss.0 + 1;
    let mut depends = vec![false; n];
    for w in wrt.iter().filter(|w| w.0 < n) {
        depends[w.0] = true;
    }
    for i in 0..n {
        if graph.node(NodeId(i)).inputs.iter().any(|x| depends[x.0]) {
            depends[i] = true;
        }
    }
    let feeds = graph.ancestors(&[loss]);
    (0..n).map(|i| depends[i] && feeds[i]).collect()
}
