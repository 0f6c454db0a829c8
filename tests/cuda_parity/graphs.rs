//! Whole-step CUDA graphs (`--cuda-graph`): a replayed step is the eager step, bit for bit,
//! and allocates nothing and waits for nothing.

use super::*;
use chainrule::backend::{GraphStatus, StepGraphs};
use chainrule::data::Dataset;
use chainrule::train::Control;

/// 200 rows of `inputs` features, 10 classes: batches of 96 leave a short last batch of 8,
/// which runs eagerly between replays.
fn data(inputs: usize) -> Dataset {
    let mut rng = KeyedRng::new(41, 41);
    let labels: Vec<u32> = (0..200).map(|_| rng.below(10) as u32).collect();
    let features = Array2::from_shape_fn((200, inputs), |(i, p)| {
        (p % 10 == labels[i] as usize) as u8 as f32 + 0.5 * rng.uniform() as f32
    });
    Dataset {
        features,
        labels,
        image_shape: None,
        targets: None,
    }
}

/// What a run ends with: the parameters' bits, each epoch's training loss, each step's
/// measured peak, and (allocations, host waits) after each step.
struct Run {
    params: Vec<Vec<u32>>,
    losses: Vec<u64>,
    peaks: Vec<u64>,
    counters: Vec<(u64, u64)>,
    status: GraphStatus,
}

fn run(
    precision: Precision,
    kind: OptimizerKind,
    inside: bool,
    policy: plan::CheckpointPolicy,
    graphs: StepGraphs,
) -> Run {
    let be = gpu(false);
    let low = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, precision).unwrap();
    // fp8's layers have sides that are multiples of 16, so their products are FP8 ones.
    let layers = if precision == Precision::Fp8 {
        "48-64-32-10"
    } else {
        "50-64-33-10"
    };
    let spec = MlpSpec::new(layers, "gelu", 0.25).unwrap();
    let inputs = spec.inputs();
    let scaled = precision == Precision::F16;
    let mut t = trainer_of(spec, &on_gpu(low.clone()), kind, scaled, policy);
    t.config.settings.epochs = 3;
    // The rate moves every step: the replayed step must read each step's.
    t.config.settings.schedule = LrSchedule::Cosine { warmup_epochs: 1 };
    t.set_update_in_backward(inside).unwrap();
    t.set_step_graphs(graphs).unwrap();
    t.log_every = 1000;
    let data = data(inputs);
    let (mut losses, mut peaks, mut counters) = (Vec::new(), Vec::new(), Vec::new());
    t.fit(
        &data,
        &data,
        |_, ev| {
            peaks.push(ev.memory.peak_total);
            counters.push((low.device_allocations(), low.host_waits()));
            Control::Continue
        },
        |_, s| {
            losses.push(s.train_loss.to_bits());
            Control::Continue
        },
    )
    .unwrap();
    Run {
        params: param_bits(&t),
        losses,
        peaks,
        counters,
        status: t.step_graphs(),
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn replayed_steps_equal_eager_steps_bit_for_bit() {
    use plan::CheckpointPolicy::{None as Keep, Sqrt};
    let cases = [
        (Precision::F32, OptimizerKind::AdamW, false, Keep),
        (Precision::F32, OptimizerKind::Sgd, true, Sqrt),
        (Precision::Bf16, OptimizerKind::AdamW, false, Sqrt),
        (Precision::Bf16, OptimizerKind::Sgd, true, Keep),
        (Precision::F16, OptimizerKind::AdamW, false, Keep),
        (Precision::Fp8, OptimizerKind::AdamW, false, Sqrt),
    ];
    for (precision, kind, inside, policy) in cases {
        let label = format!("{precision} {kind:?} inside {inside} {policy:?}");
        let eager = run(precision, kind, inside, policy, StepGraphs::Off);
        let replayed = run(precision, kind, inside, policy, StepGraphs::On);
        // 3 epochs of 3 steps: each epoch's two full steps warm up, capture, then replay.
        assert_eq!(
            replayed.status,
            GraphStatus::Replaying { rows: 96, replays: 4 },
            "{label}"
        );
        assert_eq!(eager.status, GraphStatus::Off, "{label}");
        assert!(
            replayed.params == eager.params,
            "{label}: replayed parameters differ from eager ones"
        );
        assert_eq!(replayed.losses, eager.losses, "{label}: epoch losses");
        assert_eq!(replayed.peaks, eager.peaks, "{label}: measured peaks");
        // A replayed step after another in the same epoch (steps 5 and 8; an epoch's first
        // step follows the evaluations) allocates nothing and waits for nothing.
        for step in [5, 8] {
            let (before, after) = (replayed.counters[step - 2], replayed.counters[step - 1]);
            assert_eq!(after, before, "{label}: replayed step {step} allocated or waited");
        }
    }
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn a_step_that_cannot_be_captured_runs_eagerly_under_auto_and_fails_under_on() {
    let be = gpu(false);
    let spec = MlpSpec::new("50-64-33-10", "relu", 0.0).unwrap();
    let mut rng = KeyedRng::new(43, 43);
    for (mode, fails) in [(StepGraphs::Auto, false), (StepGraphs::On, true)] {
        let mut t = trainer_of(
            spec.clone(),
            &on_gpu(be.clone()),
            OptimizerKind::Sgd,
            false,
            Default::default(),
        );
        t.set_step_graphs(mode).unwrap();
        let x = Array2::from_shape_simple_fn((96, 50), || rng.uniform() as f32);
        let y = Array1::from_shape_simple_fn(96, || rng.below(10) as f32);
        // Batches from the host are not captured.
        let result = t.train_step(x, y, 0.01);
        assert_eq!(result.is_err(), fails, "{mode}: {:?}", result.err());
        if !fails {
            assert!(
                matches!(t.step_graphs(), GraphStatus::Eager(_)),
                "{mode}: {}",
                t.step_graphs()
            );
        }
    }
}
