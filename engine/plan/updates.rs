//! Stage 5 of planning, when asked for (`--update-in-backward`): each parameter's
//! optimizer update runs inside backward, as soon as its gradient is complete and nothing
//! later reads the parameter, and the gradient is freed right after. So the weight
//! gradients are never all alive at once, which sets the peak of nets whose parameters
//! are large. Each update is the same arithmetic as after the step, so the result is
//! bitwise the same.

use super::schedule::{Instr, Schedule};
use crate::graph::{Graph, NodeId};
use crate::memory::Category;

/// Which parameters a step updates inside backward.
#[derive(Clone, Debug)]
pub struct Updates {
    /// (parameter leaf, its gradient), in the order of the program's parameters.
    pub params: Vec<(NodeId, NodeId)>,
    /// The step's loss (an output, alive to the end): a step whose loss is not finite
    /// changes nothing.
    pub loss: NodeId,
}

/// `schedule` with an [`Instr::Update`] for each of `updates`; the gradients stop being
/// outputs.
/// Stage 5: `schedule` with each parameter of `updates` updated inside backward (none asked
/// for: unchanged).
pub fn place_updates(graph: &Graph, schedule: Schedule, updates: Option<&Updates>) -> Schedule {
    match updates {
        Some(u) => update_in_backward(graph, schedule, u),
        None => schedule,
    }
}

fn update_in_backward(graph: &Graph, schedule: Schedule, updates: &Updates) -> Schedule {
    let (params, loss) = (&updates.params[..], updates.loss);
    let n = schedule.instrs.len();
    // The update of a parameter waits for its gradient and for the last read of the
    // parameter itself (a later layer's backward, a recomputation).
    let mut ready_at = vec![None; graph.len()];
    let mut last_read = vec![None; graph.len()];
    for (k, instr) in schedule.instrs.iter().enumerate() {
        if let Some(made) = instr.makes() {
            ready_at[made.0] = Some(k);
        }
        for id in instr.runs() {
            for &x in &graph.node(id).inputs {
                last_read[x.0] = Some(k);
            }
        }
    }
    let mut after: Vec<Vec<(NodeId, NodeId)>> = vec![Vec::new(); n];
    for &(param, grad) in params {
        let at = ready_at[grad.0].max(last_read[param.0]).unwrap_or(n.saturating_sub(1));
        after[at].push((param, grad));
    }
    let gradient = |id: NodeId| params.iter().any(|&(_, g)| g == id);
    let mut out = Schedule {
        instrs: Vec::with_capacity(n + 2 * params.len()),
        category: Vec::with_capacity(n + 2 * params.len()),
        outputs: schedule.outputs.iter().copied().filter(|&o| !gradient(o)).collect(),
        storage: schedule.storage.clone(),
    };
    for (k, instr) in schedule.instrs.iter().enumerate() {
        out.instrs.push(*instr);
        out.category.push(schedule.category[k]);
        for &(param, grad) in &after[k] {
            out.instrs.push(Instr::Update { param, grad, loss });
            out.category.push(Category::Temporaries);
            out.instrs.push(Instr::Free(grad));
            out.category.push(Category::Temporaries);
        }
    }
    out
}
