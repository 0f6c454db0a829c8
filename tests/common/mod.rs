//! Shared test machinery: seeded random tensors and a one-call runner for small graphs.
#![allow(dead_code)]

use chainrule::exec::{self, Session};
use chainrule::graph::{Graph, NodeId};
use chainrule::memory::MemoryTracker;
use chainrule::ops::RunContext;
use chainrule::rng::KeyedRng;
use chainrule::schedule::Schedule;
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
    }
}

/// Runs `outputs` of `graph` with `inputs` bound, returning their values.
pub fn run(
    graph: &Graph,
    session: &Session<f64>,
    outputs: &[NodeId],
    inputs: &[(&str, ArrayD<f64>)],
) -> Vec<ArrayD<f64>> {
    let schedule = Schedule::build(graph, outputs, &[]);
    let out = exec::run(graph, &schedule, session, inputs.to_vec(), &ctx()).unwrap();
    out.outputs.into_iter().map(|b| b.data).collect()
}

pub fn empty_session() -> Session<f64> {
    Session::new(MemoryTracker::new(None))
}

pub fn max_abs_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
