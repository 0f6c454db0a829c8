//! The executor walks a [`Schedule`] on any [`Backend`]: bind inputs, run each op's
//! kernel into a counted tensor, free what the schedule frees. No decisions happen here.

use crate::graph::{ConstValue, Graph, Leaf, NodeId};
use crate::memory::{Category, MemoryError};
use crate::ops::{Op, RunContext};
use crate::plan::fp8::{self, Fp8Format};
use crate::plan::{Instr, Schedule, Storage};
use crate::tensor::{DType, Shape};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no data bound for input '{0}'")]
    MissingInput(String),
    #[error("input '{name}' bound with shape {got}, the graph expects {expected}")]
    InputShape { name: String, expected: Shape, got: Shape },
    #[error("no parameter named '{0}' in the session")]
    MissingParameter(String),
    #[error("parameter '{name}' has shape {got}, the graph expects {expected}")]
    ParameterShape { name: String, expected: Shape, got: Shape },
    #[error("the graph computes in {graph}, the session in {session}")]
    DType { graph: DType, session: DType },
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("{0}")]
    Device(String),
    /// State handed to a device that does not fit it (a snapshot's optimizer tensors).
    #[error("{0}")]
    State(String),
    /// A data-parallel step's collective call failed (a rank left or never came).
    #[error(transparent)]
    Collective(#[from] crate::dist::CollectiveError),
}

/// What one run produced: the outputs in schedule order.
pub struct RunOutput<X> {
    pub outputs: Vec<X>,
}

/// A place where a schedule's tensors live and its ops run (`backend/cpu`,
/// `backend/cuda`). The executor below is written once against this trait; everything
/// else a device does is [`crate::backend::Device`]'s.
pub trait Backend {
    type Tensor;
    /// Data bound to an input leaf.
    type Input;
    fn input_shape(input: &Self::Input) -> &[usize];
    fn tensor_shape(t: &Self::Tensor) -> &[usize];
    /// Takes bound data into a tensor counted under `category`, stored as `storage` says (a
    /// 16-bit input is rounded where it is bound, as a 16-bit op output is where it is made).
    fn bind(&self, input: Self::Input, category: Category, storage: Storage) -> Result<Self::Tensor, ExecError>;
    fn constant(&self, value: &ConstValue, shape: &Shape, category: Category) -> Result<Self::Tensor, ExecError>;
    /// Runs a non-leaf op into a new tensor, stored as `storage` says.
    fn compute(&self, op: &Op, inputs: &[&Self::Tensor], out: Out, ctx: &RunContext)
        -> Result<Self::Tensor, ExecError>;
    fn duplicate(&self, t: &Self::Tensor, category: Category) -> Result<Self::Tensor, ExecError>;
    /// A fused Linear layer (see [`crate::plan::fusion`]): `relu?(x·op(w) + bias)` into one new
    /// tensor, storing nothing else. A 16-bit result is the product rounded to 16 bits, then
    /// the bias (and ReLU) applied and rounded again ([`crate::plan::precision`]).
    fn linear(&self, layer: LinearLayer, inputs: [&Self::Tensor; 3], out: Out) -> Result<Self::Tensor, ExecError>;
}

/// The tensor an op makes: its shape, memory category and storage.
#[derive(Clone, Copy)]
pub struct Out<'a> {
    pub shape: &'a Shape,
    pub category: Category,
    pub storage: Storage,
    /// For a matrix product FP8 can take ([`crate::plan::fp8::operand_formats`]), its
    /// operands' formats, which a device in a `--dtype fp8` step multiplies in; else `None`.
    pub fp8: Option<[Fp8Format; 2]>,
}

/// The shape of a fused Linear layer's computation; its inputs are `[x, w, bias]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LinearLayer {
    pub trans_a: bool,
    pub trans_b: bool,
    pub relu: bool,
}

/// How a running schedule reaches the model's parameters: reading them by name wherever
/// they live, updating them inside backward ([`crate::plan::updates`]), and hearing of the
/// schedule's outputs as they become final (a data-parallel step starts its sums there).
pub trait ParameterAccess<X> {
    fn get_param(&self, name: &str) -> Option<&X>;
    /// Applies the optimizer to parameter `name` with its complete gradient `grad` (nothing
    /// reads it after this: a data-parallel step sums it over the ranks in place first); a
    /// step whose `loss` is not finite changes nothing. Nothing the schedule runs reads the
    /// loss after the first update either: a data-parallel step sums it in place there.
    fn update(&mut self, name: &str, grad: &mut X, loss: &mut X) -> Result<(), ExecError> {
        let _ = (grad, loss);
        Err(ExecError::State(format!(
            "parameter '{name}': this run does not update parameters inside backward"
        )))
    }

    /// Whether to hear of outputs as they become final ([`Self::output_ready`]); working out
    /// where costs a pass over the schedule, so only those who listen pay it.
    fn wants_outputs(&self) -> bool {
        false
    }
    /// Output `k` of the schedule is final: computed, and read by no later instruction (a
    /// data-parallel step starts summing a gradient here, while backward goes on).
    fn output_ready(&mut self, k: usize, value: &mut X) -> Result<(), ExecError> {
        let _ = (k, value);
        Ok(())
    }
}

impl<X> ParameterAccess<X> for HashMap<String, X> {
    fn get_param(&self, name: &str) -> Option<&X> {
        self.get(name)
    }
}

/// What a device runs for a training or evaluation step: a scheduled graph whose outputs
/// are `[loss, gradient of each of params..., rows classified right]` (training) or
/// `[logits, loss]` (evaluation).
#[derive(Clone, Copy)]
pub struct Program<'a> {
    pub graph: &'a Graph,
    pub schedule: &'a Schedule,
    /// Parameter names, in the order of their gradients among a training run's outputs.
    pub params: &'a [String],
    /// Buffer names (BatchNorm's running statistics), in the order of their next values at
    /// the end of a training run's outputs.
    pub buffers: &'a [String],
    /// Whether backward is seeded by the `loss_scale` input (gradients come out scaled).
    pub loss_scaled: bool,
    /// Whether the schedule updates the parameters itself (then its outputs are
    /// `[loss, rows classified right, buffers...]`, and no gradient is handed out).
    pub updates_in_backward: bool,
    /// Which built program this is (`StepProgram::id`): equal ids run the same work.
    pub id: u64,
}

impl Program<'_> {
    /// Where a training run's buffer outputs start: after `[loss, gradients..., correct]`,
    /// or after `[loss, correct]` when the schedule updates inside backward (its outputs
    /// hold no gradient).
    pub fn first_buffer_output(&self) -> usize {
        match self.updates_in_backward {
            true => 2,
            false => self.params.len() + 2,
        }
    }

    /// How input `name` is stored in this program: 16 bits where only 16-bit products read it
    /// (a low-precision step's batch), so a device can gather or upload it that way at once.
    /// The shape of input `name` (the labels `[b]`, or a regression's targets `[b, k]`).
    pub fn input_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.graph
            .inputs()
            .into_iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| self.graph.node(id).shape.dims().to_vec())
    }

    /// `y` as the program's `labels` input takes it: a batch's labels `[b]`, or its targets
    /// row after row reshaped to `[b, k]`.
    pub fn labels_input(&self, y: ndarray::Array1<f32>) -> Result<ndarray::ArrayD<f32>, ExecError> {
        let y = y.into_dyn();
        match self.input_shape("labels") {
            Some(shape) if shape.as_slice() != y.shape() => {
                let len = y.len();
                y.into_shape_with_order(ndarray::IxDyn(&shape))
                    .map_err(|_| ExecError::State(format!("{len} label values for labels of shape {shape:?}")))
            }
            _ => Ok(y),
        }
    }

    pub fn input_storage(&self, name: &str) -> Storage {
        (0..self.graph.len())
            .map(NodeId)
            .find(|&id| matches!(&self.graph.node(id).op, Op::Leaf(Leaf::Input { name: n }) if n == name))
            .map_or(Storage::F32, |id| self.schedule.storage[id.0])
    }
}

/// Runs `schedule` on any backend, reading `params` (a schedule that updates them inside
/// backward needs [`run_updating`]).
pub fn run_on<B: Backend>(
    backend: &B,
    graph: &Graph,
    schedule: &Schedule,
    params: &impl ParameterAccess<B::Tensor>,
    inputs: Vec<(&str, B::Input)>,
    ctx: &RunContext,
) -> Result<RunOutput<B::Tensor>, ExecError> {
    run_updating(backend, graph, schedule, &mut ReadOnly(params), inputs, ctx)
}

/// Parameters that are only read.
struct ReadOnly<'a, P>(&'a P);

impl<X, P: ParameterAccess<X>> ParameterAccess<X> for ReadOnly<'_, P> {
    fn get_param(&self, name: &str) -> Option<&X> {
        self.0.get_param(name)
    }
}

/// For each instruction, the outputs that are final after it: made by an instruction and
/// read by none after this one (outputs named twice, and parameters, are copies made at the
/// end, never final before it).
pub fn output_ready_points(graph: &Graph, schedule: &Schedule) -> Vec<Vec<usize>> {
    let mut last: HashMap<NodeId, usize> = HashMap::new();
    for (i, instr) in schedule.instrs.iter().enumerate() {
        let touched = match *instr {
            Instr::Update { grad, loss, .. } => vec![grad, loss],
            _ => instr
                .runs()
                .flat_map(|id| std::iter::once(id).chain(graph.node(id).inputs.iter().copied()))
                .collect(),
        };
        for id in touched {
            last.insert(id, i);
        }
    }
    let mut points = vec![Vec::new(); schedule.instrs.len()];
    let outputs = &schedule.outputs;
    for (k, o) in outputs.iter().enumerate() {
        let once = outputs.iter().filter(|x| *x == o).count() == 1;
        let made = !matches!(graph.node(*o).op, Op::Leaf(Leaf::Parameter { .. }));
        if let (true, true, Some(&i)) = (once, made, last.get(o)) {
            points[i].push(k);
        }
    }
    points
}

/// Runs `schedule` on any backend; its [`Instr::Update`]s update `params`.
pub fn run_updating<B: Backend>(
    backend: &B,
    graph: &Graph,
    schedule: &Schedule,
    params: &mut impl ParameterAccess<B::Tensor>,
    inputs: Vec<(&str, B::Input)>,
    ctx: &RunContext,
) -> Result<RunOutput<B::Tensor>, ExecError> {
    let mut bound: HashMap<&str, B::Input> = inputs.into_iter().collect();
    let mut slots: Vec<Option<B::Tensor>> = (0..graph.len()).map(|_| None).collect();
    let ready = match params.wants_outputs() {
        true => output_ready_points(graph, schedule),
        false => vec![Vec::new(); schedule.instrs.len()],
    };
    for ((instr, &category), ready) in schedule.instrs.iter().zip(&schedule.category).zip(&ready) {
        match *instr {
            Instr::Compute(id) | Instr::Recompute(id) => {
                let node = graph.node(id);
                let tensor = match &node.op {
                    Op::Leaf(Leaf::Input { name }) => {
                        let a = bound
                            .remove(name.as_str())
                            .ok_or_else(|| ExecError::MissingInput(name.clone()))?;
                        if B::input_shape(&a) != node.shape.dims() {
                            return Err(ExecError::InputShape {
                                name: name.clone(),
                                expected: node.shape.clone(),
                                got: Shape::new(B::input_shape(&a)),
                            });
                        }
                        backend.bind(a, category, schedule.storage[id.0])?
                    }
                    Op::Leaf(Leaf::Constant { value }) => backend.constant(value, &node.shape, category)?,
                    Op::Leaf(Leaf::Parameter { .. }) => {
                        unreachable!("parameters are not scheduled")
                    }
                    op => {
                        let args = node
                            .inputs
                            .iter()
                            .map(|&x| read::<B>(graph, &slots, &*params, x))
                            .collect::<Result<Vec<_>, _>>()?;
                        let out = Out {
                            shape: &node.shape,
                            category,
                            storage: schedule.storage[id.0],
                            fp8: fp8::operand_formats(graph, id),
                        };
                        backend.compute(op, &args, out, ctx)?
                    }
                };
                slots[id.0] = Some(tensor);
            }
            Instr::Free(id) => slots[id.0] = None,
            Instr::Update { param, grad, loss } => {
                let Op::Leaf(Leaf::Parameter { name }) = &graph.node(param).op else {
                    unreachable!("updates are of parameters")
                };
                let computed = "the schedule computes it before the update";
                let mut g = slots[grad.0].take().expect(computed);
                let done = params.update(name, &mut g, slots[loss.0].as_mut().expect(computed));
                slots[grad.0] = Some(g);
                done?;
            }
            Instr::Linear {
                matmul, bias_add, act, ..
            } => {
                let (mm, add) = (graph.node(matmul), graph.node(bias_add));
                let Op::MatMul { trans_a, trans_b } = mm.op else {
                    unreachable!("fusion starts at a matrix product")
                };
                let layer = LinearLayer {
                    trans_a,
                    trans_b,
                    relu: act.is_some(),
                };
                let x = read::<B>(graph, &slots, &*params, mm.inputs[0])?;
                let w = read::<B>(graph, &slots, &*params, mm.inputs[1])?;
                let bias = read::<B>(graph, &slots, &*params, add.inputs[1])?;
                let made = act.unwrap_or(bias_add);
                let out = Out {
                    shape: &graph.node(made).shape,
                    category,
                    storage: schedule.storage[made.0],
                    fp8: fp8::operand_formats(graph, matmul),
                };
                slots[made.0] = Some(backend.linear(layer, [x, w, bias], out)?);
            }
        }
        for &k in ready {
            let o = schedule.outputs[k];
            let mut value = slots[o.0].take().expect("an output is held until it is handed out");
            let done = params.output_ready(k, &mut value);
            slots[o.0] = Some(value);
            done?;
        }
    }
    let mut outputs = Vec::with_capacity(schedule.outputs.len());
    for (k, &o) in schedule.outputs.iter().enumerate() {
        // An output named again later, or a parameter itself, is handed out as a counted copy.
        let repeated = schedule.outputs[k + 1..].contains(&o);
        let t = match slots[o.0].take() {
            Some(t) if !repeated => t,
            taken => {
                slots[o.0] = taken;
                backend.duplicate(read::<B>(graph, &slots, &*params, o)?, Category::Temporaries)?
            }
        };
        outputs.push(t);
    }
    Ok(RunOutput { outputs })
}

fn read<'a, B: Backend>(
    graph: &Graph,
    slots: &'a [Option<B::Tensor>],
    params: &'a impl ParameterAccess<B::Tensor>,
    id: NodeId,
) -> Result<&'a B::Tensor, ExecError> {
    let node = graph.node(id);
    if let Op::Leaf(Leaf::Parameter { name }) = &node.op {
        let p = params
            .get_param(name)
            .ok_or_else(|| ExecError::MissingParameter(name.clone()))?;
        if B::tensor_shape(p) != node.shape.dims() {
            return Err(ExecError::ParameterShape {
                name: name.clone(),
                expected: node.shape.clone(),
                got: Shape::new(B::tensor_shape(p)),
            });
        }
        return Ok(p);
    }
    Ok(slots[id.0]
        .as_ref()
        .expect("the schedule computes every node before its readers"))
}
