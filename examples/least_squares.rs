//! The seed's example: least squares, z = |Xw - y|², trained by gradient descent through
//! the tracer. The forward pass is traced once, backward appends dz/dw to the same graph,
//! the planner schedules it once, and every step only binds data and runs the schedule.
//!
//!     cargo run --release --example least_squares

use chainrule::autodiff::backward;
use chainrule::backend::cpu::{run, Session};
use chainrule::memory::MemoryTracker;
use chainrule::ndarray::{Array1, Array2, ArrayD};
use chainrule::ops::RunContext;
use chainrule::plan::{self, KeepSet};
use chainrule::{DType, Tracer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Data with a known answer: y = X · [2, -3, 0.5] (rows of X from a fixed pattern).
    let truth = Array1::from(vec![2.0, -3.0, 0.5]);
    let x = Array2::from_shape_fn((64, 3), |(i, j)| ((i * 7 + j * 13) % 17) as f64 / 17.0 - 0.5);
    let y = x.dot(&truth);

    let t = Tracer::new(DType::F64);
    let xs = t.input("x", [64, 3]);
    let ys = t.input("y", [64]);
    let w = t.parameter("w", [3, 1]);
    let residual = xs.matmul(&w)?.sum_axis(1)?.sub(&ys)?; // Xw - y, as a vector
    let z = residual.squared_norm()?; // |Xw - y|²
    let (z, w) = (z.id, w.id);
    let mut graph = t.finish();
    let grads = backward(&mut graph, z, &[w])?; // dz/dw, appended to the same graph
    let outputs = [z, grads[0]];
    let schedule = plan::schedule(&graph, &outputs, &grads, &KeepSet::everything(&graph));

    let mut session = Session::new(MemoryTracker::new(None));
    session.set_param("w", ArrayD::zeros(vec![3, 1]))?;
    let ctx = RunContext {
        seed: 0,
        step: 0,
        training: true,
        first_row: 0,
    };
    for step in 0..200 {
        let inputs = vec![("x", x.clone().into_dyn()), ("y", y.clone().into_dyn())];
        let out = run(&graph, &schedule, &session, inputs, &ctx)?.outputs;
        let (loss, grad) = (out[0].scalar(), out[1].data.clone());
        let w = session.param_mut("w").expect("w was set");
        w.zip_mut_with(&grad, |w, g| *w -= 0.02 * g);
        if step % 50 == 0 {
            println!("step {step:3}  z = {loss:.6}");
        }
    }
    let w = session.param("w").expect("w was set");
    println!("w = {:.4} (truth {truth})", w.iter().copied().collect::<Array1<f64>>());
    Ok(())
}
