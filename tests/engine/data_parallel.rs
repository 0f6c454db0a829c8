//! Data-parallel training on the CPU, its ranks threads joined by the test collective
//! (`dist::threads`): N ranks with B/N rows each give the parameters of one rank with B,
//! within the f32 reduction-order bound; one rank is bitwise a plain run; a run saved at one
//! world size resumes at another; a rank that fails ends the others with its name; a
//! non-finite loss on one rank stops every rank at the same step with nothing changed.

use crate::common::param_bits;
use chainrule::backend;
use chainrule::data::Normalization;
use chainrule::dist::{threads, Collective, Group};
use chainrule::nn::MlpSpec;
use chainrule::optim::{OptimizerConfig, OptimizerKind};
use chainrule::plan::CheckpointPolicy;
use chainrule::rng::KeyedRng;
use chainrule::train::{TrainConfig, TrainError, Trainer};
use ndarray::{Array1, Array2};
use std::sync::Arc;
use std::time::Duration;

/// Relative to the largest parameter: how far N ranks may end from one after the five steps
/// below. Each rank sums its rows' gradient contributions, then the ranks' weighted means
/// are added, where one rank adds all rows in one sum: the same terms in another order.
/// Measured: 2.6e-8 (SGD with momentum) and 1.1e-7 (AdamW) at 2 and 4 ranks, where f32's
/// unit roundoff is 6e-8; a mask keyed by the local row instead ends ~1e-2 away.
const REDUCTION_ORDER_BOUND: f32 = 1e-6;
/// [`REDUCTION_ORDER_BOUND`] for the gated block net, where LayerNorm divides each row by its
/// spread and the gate multiplies two products, so the same reordering moves the result
/// further: 1.4e-6 measured (SGD, 2 ranks); a mask keyed by the local row ends ~1e-2 away.
const BLOCK_REDUCTION_ORDER_BOUND: f32 = 1e-5;

fn config(optimizer: OptimizerConfig) -> TrainConfig {
    crate::common::one_epoch(24, 0.02, 11, optimizer)
}

pub(super) fn optimizers() -> Vec<OptimizerConfig> {
    let mut momentum = OptimizerConfig::new(OptimizerKind::Sgd);
    momentum.momentum = 0.9;
    momentum.nesterov = true;
    momentum.weight_decay = 0.01;
    let mut adamw = OptimizerConfig::new(OptimizerKind::AdamW);
    adamw.weight_decay = 0.05;
    vec![momentum, adamw]
}

/// Global batches of 24 rows, then a last one of 3 (fewer rows than 4 ranks: one gets none).
pub(super) fn batches() -> Vec<(Array2<f32>, Array1<f32>)> {
    let mut rng = KeyedRng::new(21, 21);
    [24, 24, 24, 24, 3]
        .iter()
        .map(|&rows| {
            let x = Array2::from_shape_simple_fn((rows, 16), || rng.uniform() as f32 - 0.5);
            let y = Array1::from_shape_simple_fn(rows, || rng.below(5) as f32);
            (x, y)
        })
        .collect()
}

pub(super) fn trainer(optimizer: &OptimizerConfig) -> Trainer {
    trainer_of(MlpSpec::new("16-32-24-5", "gelu", 0.25).unwrap(), optimizer)
}

fn trainer_of(spec: MlpSpec, optimizer: &OptimizerConfig) -> Trainer {
    Trainer::new(
        spec,
        config(optimizer.clone()),
        Normalization::scale_only(1.0),
        &backend::cpu(),
    )
    .unwrap()
}

/// [`trainer`], updating each parameter inside backward (under `sqrt` checkpointing).
pub(super) fn updating_trainer(optimizer: &OptimizerConfig) -> Trainer {
    let spec = MlpSpec::new("16-32-24-5", "gelu", 0.25).unwrap();
    let c = TrainConfig {
        update_in_backward: true,
        checkpoint: CheckpointPolicy::Sqrt,
        ..config(optimizer.clone())
    };
    Trainer::new(spec, c, Normalization::scale_only(1.0), &backend::cpu()).unwrap()
}

/// Runs `work` on `world` threads, each with its rank's trainer joined to one group; returns
/// what each rank's `work` returned, rank 0 first.
pub fn on_ranks<R: Send>(
    world: usize,
    make: impl Fn() -> Trainer + Sync,
    work: impl Fn(&mut Trainer) -> R + Sync,
) -> Vec<R> {
    let ranks = threads::group(world, Duration::from_secs(60));
    std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|rank| {
                let (make, work) = (&make, &work);
                s.spawn(move || {
                    let mut t = make();
                    t.join(Group::new(Arc::new(rank) as Arc<dyn Collective>)).unwrap();
                    work(&mut t)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn train_all(t: &mut Trainer, batches: &[(Array2<f32>, Array1<f32>)]) -> Vec<f32> {
    batches
        .iter()
        .map(|(x, y)| t.train_step(x.clone(), y.clone(), 0.02).unwrap().0)
        .collect()
}

fn params(t: &Trainer) -> Vec<f32> {
    t.mlp
        .parameter_names()
        .iter()
        .flat_map(|n| t.parameter(n).unwrap().unwrap().iter().copied().collect::<Vec<_>>())
        .collect()
}

/// The largest difference between two parameter lists, relative to the largest parameter.
fn relative_distance(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn one_rank_is_bitwise_a_plain_run() {
    let data = batches();
    for optimizer in optimizers() {
        let mut plain = trainer(&optimizer);
        let plain_losses = train_all(&mut plain, &data);
        let ranked = on_ranks(1, || trainer(&optimizer), |t| (train_all(t, &data), param_bits(t)));
        let (losses, bits) = &ranked[0];
        assert_eq!(losses, &plain_losses, "{:?}", optimizer.kind);
        assert!(
            bits == &param_bits(&plain),
            "{:?}: one rank changed the parameters' bits",
            optimizer.kind
        );
    }
}

#[test]
fn two_and_four_ranks_match_one_within_the_reduction_order_bound() {
    let data = batches();
    let specs = [
        (
            "plain",
            MlpSpec::new("16-32-24-5", "gelu", 0.25).unwrap(),
            REDUCTION_ORDER_BOUND,
        ),
        (
            "gated blocks",
            crate::blocks::data_parallel_net(),
            BLOCK_REDUCTION_ORDER_BOUND,
        ),
    ];
    for ((net, spec, bound), optimizer) in specs.iter().flat_map(|s| optimizers().into_iter().map(move |o| (s, o))) {
        let trainer = |optimizer: &OptimizerConfig| trainer_of(spec.clone(), optimizer);
        let mut one = trainer(&optimizer);
        let one_losses = train_all(&mut one, &data);
        let reference = params(&one);
        for world in [2, 4] {
            let label = format!("{net}, {:?}, {world} ranks", optimizer.kind);
            let ranked = on_ranks(world, || trainer(&optimizer), |t| (train_all(t, &data), params(t)));
            for (rank, (losses, p)) in ranked.iter().enumerate() {
                // Every rank applies the same update and sees the same global loss.
                assert_eq!(p, &ranked[0].1, "{label}: rank {rank} differs from rank 0");
                assert_eq!(
                    losses, &ranked[0].0,
                    "{label}: rank {rank}'s losses differ from rank 0's"
                );
            }
            for (a, b) in ranked[0].0.iter().zip(&one_losses) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{label}: loss {a} against one rank's {b}"
                );
            }
            let d = relative_distance(&reference, &ranked[0].1);
            assert!(d <= *bound, "{label}: parameters {d:e} from one rank's");
            // Dropout keyed by the global row is what makes this hold: the ranks must not
            // simply agree because nothing was dropped.
            assert!(
                d > 0.0 || world == 1,
                "{label}: bitwise equal is suspicious for a reordered sum"
            );
        }
    }
}

#[test]
fn a_run_saved_at_two_ranks_resumes_at_one_and_at_four() {
    let data = batches();
    let optimizer = optimizers().pop().unwrap();
    let mut whole = trainer(&optimizer);
    train_all(&mut whole, &data);
    let reference = params(&whole);
    // Two ranks train the first three batches; rank 0's snapshot is the saved run.
    let saved = on_ranks(
        2,
        || trainer(&optimizer),
        |t| {
            train_all(t, &data[..3]);
            t.to_snapshot().unwrap()
        },
    )
    .swap_remove(0);
    for world in [1, 4] {
        let resumed = on_ranks(
            world,
            || Trainer::from_snapshot(saved.clone(), 1, &backend::cpu()).unwrap(),
            |t| {
                train_all(t, &data[3..]);
                params(t)
            },
        );
        let d = relative_distance(&reference, &resumed[0]);
        assert!(
            d <= REDUCTION_ORDER_BOUND,
            "saved at 2 ranks, resumed at {world}: {d:e} from an uninterrupted run"
        );
    }
}

#[test]
fn a_rank_that_fails_ends_the_others_with_its_name() {
    let data = batches();
    let optimizer = optimizers().remove(0);
    let ranks = threads::group(3, Duration::from_secs(60));
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .into_iter()
            .map(|rank| {
                let (data, optimizer) = (&data, &optimizer);
                s.spawn(move || {
                    let failing = rank.rank() == 2;
                    let mut t = trainer(optimizer);
                    t.join(Group::new(Arc::new(rank) as Arc<dyn Collective>)).unwrap();
                    for (step, (x, y)) in data.iter().enumerate() {
                        if failing && step == 2 {
                            return Err("rank 2 stopped".to_string());
                        }
                        t.train_step(x.clone(), y.clone(), 0.02).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (rank, outcome) in outcomes.iter().enumerate().take(2) {
        let err = outcome.as_ref().unwrap_err();
        assert!(err.contains("rank 2 left the job"), "rank {rank}: {err}");
    }
}

#[test]
fn a_non_finite_loss_on_one_rank_stops_every_rank_at_that_step_with_nothing_changed() {
    let mut data = batches();
    // Row 20 of the third batch is rank 1's (of two): only it sees the NaN.
    data[2].0[[20, 3]] = f32::NAN;
    let optimizer = optimizers().remove(0);
    let outcomes = on_ranks(
        2,
        || trainer(&optimizer),
        |t| {
            for (x, y) in &data {
                let before = params(t);
                if let Err(e) = t.train_step(x.clone(), y.clone(), 0.02) {
                    return (e, before == params(t), t.state.step);
                }
            }
            panic!("no rank stopped");
        },
    );
    for (rank, (err, unchanged, step)) in outcomes.iter().enumerate() {
        assert!(
            matches!(err, TrainError::NonFinite { step: 3, .. }),
            "rank {rank}: {err}"
        );
        assert!(unchanged, "rank {rank}: the non-finite step changed the parameters");
        assert_eq!(*step, 2, "rank {rank}");
    }
}

#[test]
fn updates_inside_backward_work_per_rank_as_the_ordinary_step_does() {
    let data = batches();
    for optimizer in optimizers() {
        // Inside backward is bitwise the ordinary step, alone; so one rank must be bitwise
        // a plain run, and N ranks (each summing every gradient just before its update, a
        // rank with no rows of the last batch summing zeros) within the bound of it.
        let mut plain = updating_trainer(&optimizer);
        let plain_losses = train_all(&mut plain, &data);
        let mut ordinary = trainer(&optimizer);
        train_all(&mut ordinary, &data);
        assert!(param_bits(&plain) == param_bits(&ordinary), "{:?}", optimizer.kind);
        let one = on_ranks(
            1,
            || updating_trainer(&optimizer),
            |t| (train_all(t, &data), param_bits(t)),
        );
        assert_eq!(one[0].0, plain_losses, "{:?}", optimizer.kind);
        assert!(
            one[0].1 == param_bits(&plain),
            "{:?}: one rank changed the bits",
            optimizer.kind
        );
        for world in [2, 4] {
            let ranked = on_ranks(
                world,
                || updating_trainer(&optimizer),
                |t| (train_all(t, &data), params(t)),
            );
            for (rank, (losses, p)) in ranked.iter().enumerate() {
                assert_eq!(p, &ranked[0].1, "{world} ranks: rank {rank} differs from rank 0");
                assert_eq!(losses, &ranked[0].0);
            }
            let d = relative_distance(&params(&plain), &ranked[0].1);
            assert!(
                d <= REDUCTION_ORDER_BOUND,
                "{:?}, {world} ranks inside backward: {d:e}",
                optimizer.kind
            );
        }
    }
}

/// Reads parameters from a session and keeps a copy of each output as it is reported final.
struct Listener<'a> {
    session: &'a chainrule::backend::cpu::Session<f32>,
    heard: Vec<(usize, Vec<u32>)>,
}

impl chainrule::exec::ParameterAccess<chainrule::backend::cpu::Buffer<f32>> for Listener<'_> {
    fn get_param(&self, name: &str) -> Option<&chainrule::backend::cpu::Buffer<f32>> {
        self.session.get_param(name)
    }
    fn wants_outputs(&self) -> bool {
        true
    }
    fn output_ready(
        &mut self,
        k: usize,
        value: &mut chainrule::backend::cpu::Buffer<f32>,
    ) -> Result<(), chainrule::exec::ExecError> {
        self.heard.push((k, value.data.iter().map(|v| v.to_bits()).collect()));
        // Whoever hears it may change it in place (a sum over ranks): nothing reads it again.
        value.data.fill(f32::NAN);
        Ok(())
    }
}

#[test]
fn every_gradient_is_reported_once_with_its_final_value_and_read_by_nothing_after() {
    use chainrule::nn::Mlp;
    use chainrule::train::StepProgram;
    let mlp = Mlp::new(MlpSpec::new("13-17-19-17-5", "gelu", 0.3).unwrap()).unwrap();
    for policy in [
        CheckpointPolicy::None,
        CheckpointPolicy::Sqrt,
        CheckpointPolicy::Every(2),
    ] {
        let session = crate::common::session(&mlp);
        let program = StepProgram::checkpointed(&mlp, 8, policy, &session.tracker().report()).unwrap();
        let reference = crate::common::run_schedule(&mlp, &program, &program.schedule, &session, 8);
        let mut rng = KeyedRng::new(4, 4);
        let x = ndarray::ArrayD::from_shape_simple_fn(vec![8, 13], || rng.uniform() as f32 - 0.3);
        let y = ndarray::ArrayD::from_shape_simple_fn(vec![8], || rng.below(5) as f32);
        let ctx = chainrule::ops::RunContext {
            seed: 21,
            step: 5,
            training: true,
            first_row: 0,
        };
        let cpu =
            chainrule::backend::cpu::Cpu::with_precision(session.tracker().clone(), chainrule::backend::Precision::F32);
        let mut listener = Listener {
            session: &session,
            heard: Vec::new(),
        };
        let inputs = vec![("x", x), ("labels", y)];
        let out = chainrule::exec::run_updating(&cpu, &program.graph, &program.schedule, &mut listener, inputs, &ctx)
            .unwrap();
        let params = program.params.len();
        let mut heard: Vec<usize> = listener.heard.iter().map(|(k, _)| *k).collect();
        heard.sort();
        assert!(
            (1..=params).all(|k| heard.contains(&k)),
            "{policy}: gradients heard {heard:?}"
        );
        heard.dedup();
        assert_eq!(
            heard.len(),
            listener.heard.len(),
            "{policy}: an output was reported twice"
        );
        for (k, bits) in &listener.heard {
            // The value heard is the one a plain run hands out: it was final.
            assert_eq!(
                bits, &reference.outputs[*k],
                "{policy}: output {k} changed after it was reported"
            );
            // And nothing read it afterwards: the NaN written over it reached nothing else.
            assert!(out.outputs[*k].data.iter().all(|v| v.is_nan()));
        }
        assert!(
            out.outputs[0].data.iter().all(|v| v.is_finite()) || heard.contains(&0),
            "{policy}: the loss took a NaN"
        );
        for k in 0..out.outputs.len() {
            if !heard.contains(&k) {
                assert!(
                    out.outputs[k].data.iter().all(|v| !v.is_nan()),
                    "{policy}: output {k} read a NaN"
                );
            }
        }
    }
}
