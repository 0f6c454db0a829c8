//! Shared test machinery: seeded random tensors, a one-call runner for small graphs, and a
//! runner for training programs' schedules that measures their memory.
#![allow(dead_code)]

use chainrule::backend::cpu::{self, Session};
use chainrule::graph::{Graph, NodeId};
use chainrule::io::TrainSettings;
use chainrule::memory::{MemoryReport, MemoryTracker};
use chainrule::nn::Mlp;
use chainrule::ops::RunContext;
use chainrule::optim::{LrSchedule, OptimizerConfig};
use chainrule::plan::{self, KeepSet, Schedule};
use chainrule::rng::KeyedRng;
use chainrule::train::{StepProgram, TrainConfig, Trainer};
use ndarray::ArrayD;

/// Values in ±[0.2, 1.5]: never zero, away from ReLU's kink.
pub fn random_array(rng: &mut KeyedRng, shape: &[usize]) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            let m = 0.2 + 1.3 * rng.uniform();
            if rng.uniform() < 0.5 {
                -m
            } else {
                m
            }
        })
        .collect();
    ArrayD::from_shape_vec(shape, v).unwrap()
}

pub fn ctx() -> RunContext {
    RunContext {
        seed: 7,
        step: 3,
        training: true,
        first_row: 0,
    }
}

/// Runs `outputs` of `graph` with `inputs` bound, returning their values.
pub fn run(
    graph: &Graph,
    session: &Session<f64>,
    outputs: &[NodeId],
    inputs: &[(&str, ArrayD<f64>)],
) -> Vec<ArrayD<f64>> {
    let schedule = plan::schedule(graph, outputs, &[], &KeepSet::everything(graph));
    let out = cpu::run(graph, &schedule, session, inputs.to_vec(), &ctx()).unwrap();
    out.outputs.into_iter().map(|b| b.data).collect()
}

pub fn empty_session() -> Session<f64> {
    Session::new(MemoryTracker::new(None))
}

pub fn max_abs_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Every parameter's values as bits, in the model's parameter order, then every buffer's
/// (BatchNorm's running statistics): for bit-for-bit checks.
pub fn param_bits(t: &Trainer) -> Vec<Vec<u32>> {
    t.mlp
        .parameter_names()
        .iter()
        .chain(&t.mlp.buffer_names())
        .map(|n| t.parameter(n).unwrap().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// One run of a training program's `schedule` on the CPU.
pub struct Run {
    /// Every output (loss, then gradients) as bits.
    pub outputs: Vec<Vec<u32>>,
    pub measured: MemoryReport,
    pub predicted: MemoryReport,
}

/// Runs `schedule` (the program's own, or another for the same graph) on a fixed random
/// batch of `batch` rows with dropout on, measuring its memory beside the prediction.
pub fn run_schedule(
    mlp: &Mlp,
    program: &StepProgram,
    schedule: &Schedule,
    session: &Session<f32>,
    batch: usize,
) -> Run {
    let tracker = session.tracker().clone();
    let predicted = schedule.predict(&program.graph, &tracker.report());
    let mut rng = KeyedRng::new(4, 4);
    let x = ArrayD::from_shape_simple_fn(vec![batch, mlp.spec.inputs()], || rng.uniform() as f32 - 0.3);
    let y = ArrayD::from_shape_simple_fn(vec![batch], || rng.below(mlp.spec.classes() as u64) as f32);
    let ctx = RunContext {
        seed: 21,
        step: 5,
        training: true,
        first_row: 0,
    };
    tracker.reset_peak();
    let out = cpu::run(&program.graph, schedule, session, vec![("x", x), ("labels", y)], &ctx).unwrap();
    Run {
        outputs: out
            .outputs
            .iter()
            .map(|b| b.data.iter().map(|v| v.to_bits()).collect())
            .collect(),
        measured: tracker.report(),
        predicted,
    }
}

/// A CPU session holding `mlp`'s initial parameters (seed 9).
pub fn session(mlp: &Mlp) -> Session<f32> {
    let mut s = Session::<f32>::new(MemoryTracker::new(None));
    for (name, v) in mlp.initial_parameters(9).into_iter().chain(mlp.initial_buffers()) {
        s.set_param(&name, v.mapv(|x| x as f32)).unwrap();
    }
    s
}

/// Runs `mlp`'s step under each of `policies` and fails, naming `label` and the policy,
/// unless its gradients are bitwise `reference`'s and its predicted peak the measured one.
pub fn assert_policies_match(
    mlp: &Mlp,
    batch: usize,
    reference: &Run,
    policies: &[chainrule::plan::CheckpointPolicy],
    label: &str,
) {
    for &policy in policies {
        let run = step_under(mlp, batch, policy);
        assert_eq!(
            run.outputs, reference.outputs,
            "{label}, {policy}: gradients differ from none"
        );
        assert_eq!(
            run.predicted, run.measured,
            "{label}, {policy}: prediction differs from measurement"
        );
    }
}

/// One training step of `mlp` under `policy` from fresh parameters, on the fixed batch of
/// [`run_schedule`], measured beside its prediction.
pub fn step_under(mlp: &Mlp, batch: usize, policy: chainrule::plan::CheckpointPolicy) -> Run {
    let session = session(mlp);
    let program = chainrule::train::StepProgram::checkpointed(mlp, batch, policy, &session.tracker().report()).unwrap();
    run_schedule(mlp, &program, &program.schedule, &session, batch)
}

/// One epoch of `batch_size`-row steps at a constant `lr`, seeded by `seed`, with nothing
/// else on: no shifts, validation, checkpointing, loss scaling or updates inside backward
/// (a test turns on what it varies with `..one_epoch(...)`).
pub fn one_epoch(batch_size: usize, lr: f64, seed: u64, optimizer: OptimizerConfig) -> TrainConfig {
    TrainConfig {
        settings: TrainSettings {
            epochs: 1,
            batch_size,
            lr,
            schedule: LrSchedule::Constant,
            seed,
            augment_shift: 0,
            validation: Default::default(),
        },
        optimizer,
        checkpoint: Default::default(),
        loss_scaling: false,
        update_in_backward: false,
    }
}
