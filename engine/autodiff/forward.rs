//! Forward accumulation (JVP): push tangents from leaves to outputs in topological
//! order, appending each op's Jacobian-vector product.

use crate::graph::{Graph, GraphError, NodeId, Phase};
use crate::ops;

/// `seeds` pairs a leaf with the node holding its tangent (usually an input leaf bound to
/// the direction v). Returns the tangent node of each output (zero where none reaches it).
pub fn jvp(graph: &mut Graph, seeds: &[(NodeId, NodeId)], outputs: &[NodeId]) -> Result<Vec<NodeId>, GraphError> {
    for &(leaf, t) in seeds {
        if graph.shape(leaf) != graph.shape(t) {
            return Err(GraphError::ShapeMismatch {
                op: "jvp",
                lhs: graph.shape(leaf).clone(),
                rhs: graph.shape(t).clone(),
                why: "a tangent must have its leaf's shape".into(),
            });
        }
    }
    let n = outputs.iter().map(|o| o.0 + 1).max().unwrap_or(0);
    let needed = graph.ancestors(outputs);
    let mut tangents: Vec<Option<NodeId>> = vec![None; n];
    for &(leaf, t) in seeds.iter().filter(|(l, _)| l.0 < n) {
        tangents[leaf.0] = Some(t);
    }
    graph.set_phase(Phase::Tangent);
    for i in 0..n {
        let node = graph.node(NodeId(i));
        if !needed[i] || node.op.is_leaf() {
            continue;
        }
        let ts: Vec<Option<NodeId>> = node.inputs.iter().map(|x| tangents[x.0]).collect();
        tangents[i] = ops::jvp(graph, NodeId(i), &ts)?;
    }
    let result = outputs
        .iter()
        .map(|&o| match tangents[o.0] {
            Some(t) => t,
            None => {
                let shape = graph.shape(o).clone();
                graph.fill(0.0, shape)
            }
        })
        .collect();
    graph.set_phase(Phase::Forward);
    Ok(result)
}
