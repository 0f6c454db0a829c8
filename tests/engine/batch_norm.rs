//! BatchNorm1d as PyTorch defines it: a training batch normalized by its own statistics
//! (biased variance), the running statistics moved by momentum 0.1 toward the batch's
//! (unbiased variance), evaluation by the running statistics; moved once a step whatever
//! the checkpoint policy recomputes; saved and resumed with the model; each data-parallel
//! rank's from its own rows.

use crate::common::{empty_session, max_abs_diff, param_bits, random_array, run};
use crate::training::{clusters, config};
use chainrule::backend;
use chainrule::data::Normalization;
use chainrule::nn::{BlockKind, BlockSpec, MlpSpec, NormChoice, NormLayer};
use chainrule::ops::Norm;
use chainrule::optim::OptimizerKind;
use chainrule::plan::CheckpointPolicy;
use chainrule::rng::KeyedRng;
use chainrule::train::{Control, TrainConfig, Trainer};
use chainrule::{DType, Tracer};
use ndarray::{Array1, Array2, ArrayD, Axis};

const EPS: f64 = 1e-5;

/// A residual net of two blocks with `norm`, dropout on.
pub fn batch_norm_net(norm: NormChoice) -> MlpSpec {
    let blocks = BlockSpec {
        kind: BlockKind::Residual,
        norm,
        expansion: 2,
    };
    MlpSpec::new("6-8-8-3", "relu", 0.1)
        .unwrap()
        .with_blocks(Some(blocks))
        .unwrap()
}

/// A BatchNorm layer's session in f64: weight, bias and running statistics away from
/// their initial values.
fn layer_with_state(rng: &mut KeyedRng) -> (NormLayer, chainrule::backend::cpu::Session<f64>) {
    let layer = NormLayer {
        name: "bn".into(),
        norm: Norm::Batch,
        features: 3,
    };
    let mut session = empty_session();
    for name in ["bn.weight", "bn.bias", "bn.running_mean"] {
        session.set_param(name, random_array(rng, &[3])).unwrap();
    }
    session
        .set_param("bn.running_var", random_array(rng, &[3]).mapv(f64::abs))
        .unwrap();
    (layer, session)
}

fn param(session: &chainrule::backend::cpu::Session<f64>, name: &str) -> Array1<f64> {
    session.param(name).unwrap().clone().into_dimensionality().unwrap()
}

#[test]
fn a_training_batch_normalizes_by_its_own_statistics_and_moves_the_running_ones_as_pytorch_does() {
    let mut rng = KeyedRng::new(5, 5);
    let (layer, session) = layer_with_state(&mut rng);
    let tracer = Tracer::new(DType::F64);
    let x = tracer.input("x", [5, 3]);
    let y = layer.forward(&tracer, &x).unwrap().id;
    let (graph, updates) = tracer.finish_with_updates();
    let names: Vec<&str> = updates.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["bn.running_mean", "bn.running_var"]);
    let xv = random_array(&mut rng, &[5, 3]);
    let got = run(&graph, &session, &[y, updates[0].1, updates[1].1], &[("x", xv.clone())]);

    // torch.nn.BatchNorm1d(3).train() by hand, in f64.
    let x2: Array2<f64> = xv.into_dimensionality().unwrap();
    let mean = x2.mean_axis(Axis(0)).unwrap();
    let biased = x2.var_axis(Axis(0), 0.0);
    let unbiased = x2.var_axis(Axis(0), 1.0);
    let (w, b) = (param(&session, "bn.weight"), param(&session, "bn.bias"));
    let want_y = (&x2 - &mean) / biased.mapv(|v| (v + EPS).sqrt()) * &w + &b;
    let want_mean = param(&session, "bn.running_mean") * 0.9 + &mean * 0.1;
    let want_var = param(&session, "bn.running_var") * 0.9 + &unbiased * 0.1;
    assert!(max_abs_diff(&got[0], &want_y.into_dyn()) < 1e-12);
    assert!(max_abs_diff(&got[1], &want_mean.into_dyn()) < 1e-15);
    assert!(max_abs_diff(&got[2], &want_var.into_dyn()) < 1e-15);
}

#[test]
fn evaluation_normalizes_by_the_running_statistics_and_moves_nothing() {
    let mut rng = KeyedRng::new(6, 6);
    let (layer, session) = layer_with_state(&mut rng);
    let tracer = Tracer::evaluating(DType::F64);
    // One row is enough in evaluation.
    let x = tracer.input("x", [1, 3]);
    let y = layer.forward(&tracer, &x).unwrap().id;
    let (graph, updates) = tracer.finish_with_updates();
    assert!(updates.is_empty());
    let xv = random_array(&mut rng, &[1, 3]);
    let got = run(&graph, &session, &[y], &[("x", xv.clone())]);
    let x2: Array2<f64> = xv.into_dimensionality().unwrap();
    let (mean, var) = (param(&session, "bn.running_mean"), param(&session, "bn.running_var"));
    let (w, b) = (param(&session, "bn.weight"), param(&session, "bn.bias"));
    let want = (&x2 - &mean) / var.mapv(|v| (v + EPS).sqrt()) * &w + &b;
    assert!(max_abs_diff(&got[0], &want.into_dyn()) < 1e-12);
}

/// A fresh [`batch_norm_net`] trainer on the CPU.
fn batch_norm_trainer(config: TrainConfig) -> Trainer {
    let spec = batch_norm_net(NormChoice::Batch);
    Trainer::new(spec, config, Normalization::scale_only(1.0), &backend::cpu()).unwrap()
}

fn trained(policy: CheckpointPolicy, inside_backward: bool) -> Trainer {
    let (train, test) = (clusters(50, 1), clusters(20, 2));
    let mut c = config(OptimizerKind::AdamW, 2);
    c.checkpoint = policy;
    c.update_in_backward = inside_backward;
    let mut t = batch_norm_trainer(c);
    t.fit(&train, &test, |_, _| Control::Continue, |_, _| Control::Continue)
        .unwrap();
    t
}

fn buffers(t: &Trainer) -> Vec<ArrayD<f32>> {
    let names = t.mlp.buffer_names();
    names.iter().map(|n| t.parameter(n).unwrap().unwrap()).collect()
}

#[test]
fn running_statistics_move_once_a_step_whatever_the_policy_recomputes() {
    let none = trained(CheckpointPolicy::None, false);
    let initial = batch_norm_trainer(config(OptimizerKind::AdamW, 2));
    assert_ne!(buffers(&none), buffers(&initial), "training moved no running statistic");
    for (policy, inside) in [
        (CheckpointPolicy::Cheap, false),
        (CheckpointPolicy::Sqrt, false),
        (CheckpointPolicy::Every(1), true),
        (CheckpointPolicy::Revolve(1), false),
        (CheckpointPolicy::Revolve(2), true),
    ] {
        let t = trained(policy, inside);
        assert!(
            param_bits(&t) == param_bits(&none),
            "{policy} (updates inside backward: {inside}): weights or running statistics differ from none's"
        );
    }
    // The saved model counts its batches as PyTorch does: one a training step.
    let saved = none.to_snapshot().unwrap();
    for name in none.mlp.batch_counters() {
        assert_eq!(
            saved.tensors[&name].iter().copied().collect::<Vec<_>>(),
            [none.state.step as f32]
        );
    }
    assert_eq!(none.mlp.batch_counters().len(), 3);
}

#[test]
fn each_data_parallel_rank_keeps_the_statistics_of_its_own_rows() {
    let mut rng = KeyedRng::new(8, 8);
    let data: Vec<(Array2<f32>, Array1<f32>)> = [24, 24, 6]
        .iter()
        .map(|&rows| {
            let x = Array2::from_shape_simple_fn((rows, 6), || rng.uniform() as f32 - 0.5);
            (x, Array1::from_shape_simple_fn(rows, || rng.below(3) as f32))
        })
        .collect();
    let make = || batch_norm_trainer(config(OptimizerKind::Sgd, 1));
    let ranked = crate::data_parallel::on_ranks(2, make, |t| {
        for (x, y) in &data {
            t.train_step(x.clone(), y.clone(), 0.05).unwrap();
        }
        let weights: Vec<ArrayD<f32>> = t
            .mlp
            .parameter_names()
            .iter()
            .map(|n| t.parameter(n).unwrap().unwrap())
            .collect();
        (weights, buffers(t))
    });
    // One update for the whole batch on every rank, as DistributedDataParallel applies it;
    // running statistics from each rank's own rows, as it keeps them without SyncBatchNorm.
    assert_eq!(ranked[0].0, ranked[1].0, "the ranks' weights differ");
    assert_ne!(ranked[0].1, ranked[1].1, "the ranks' running statistics are the same");
}

#[test]
fn a_running_statistic_that_overflows_stops_the_step_as_a_non_finite_loss_does() {
    // Inputs so large that the batch variance overflows f32, while the normalized values
    // (and so the loss) stay finite.
    let mut train = clusters(50, 1);
    train.features.mapv_inplace(|v| v * 1e25);
    let mut t = batch_norm_trainer(config(OptimizerKind::AdamW, 1));
    let before = (param_bits(&t), buffers(&t));
    let err = t
        .fit(
            &train,
            &clusters(20, 2),
            |_, _| Control::Continue,
            |_, _| Control::Continue,
        )
        .unwrap_err();
    match err {
        chainrule::train::TrainError::NonFinite { value, step, .. } => {
            assert!(value.is_finite() && step == 1, "loss {value} at step {step}");
        }
        other => panic!("expected the guard to stop the step, got {other}"),
    }
    assert!(
        (param_bits(&t), buffers(&t)) == before,
        "the stopped step changed the model"
    );
}
