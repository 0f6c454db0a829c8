//! `cargo bench`: one training step (forward, backward, SGD update) of MLP
//! 784-1024-1024-1024-10 at batch 256 in f32, beside the bare matrix products of the same
//! shapes, alternating so machine noise hits both alike; medians and their ratio. The
//! same comparison as `chainrule bench --device cpu`, with no dependency of its own (a
//! harness would rebuild shared crates with other features for every `cargo test`).

use chainrule::backend;
use chainrule::data::Normalization;
use chainrule::io::TrainSettings;
use chainrule::ndarray::{Array1, Array2, ArrayD};
use chainrule::nn::MlpSpec;
use chainrule::ops::matmul;
use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::rng::KeyedRng;
use chainrule::train::{TrainConfig, Trainer};
use std::hint::black_box;
use std::time::Instant;

const LAYERS: &str = "784-1024-1024-1024-10";
const BATCH: usize = 256;
const WARMUP: usize = 3;
const SAMPLES: usize = 20;

fn random(rng: &mut KeyedRng, r: usize, c: usize) -> ArrayD<f32> {
    Array2::from_shape_simple_fn((r, c), || rng.uniform() as f32 - 0.5).into_dyn()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo test` runs benches in test mode (`--bench` absent): build-check only.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    backend::cpu::keep_freed_memory();
    // As the command line runs its commands: on a thread of the pool the products use.
    backend::cpu::run_on_pool_thread(measure);
}

fn measure() {
    let spec = MlpSpec::new(LAYERS, "relu", 0.0).unwrap();
    let mut rng = KeyedRng::new(3, 1);
    let layers: Vec<_> = spec
        .widths
        .windows(2)
        .map(|w| {
            (
                random(&mut rng, BATCH, w[0]),
                random(&mut rng, w[1], w[0]),
                random(&mut rng, BATCH, w[1]),
            )
        })
        .collect();
    let config = TrainConfig {
        settings: TrainSettings {
            epochs: 1,
            batch_size: BATCH,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            seed: 0,
            augment_shift: 0,
            validation: Default::default(),
        },
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        checkpoint: Default::default(),
        loss_scaling: false,
        update_in_backward: false,
    };
    let mut trainer = Trainer::new(spec.clone(), config, Normalization::scale_only(1.0), &backend::cpu()).unwrap();
    let x = Array2::from_shape_simple_fn((BATCH, spec.inputs()), || rng.uniform() as f32);
    let y = Array1::from_shape_simple_fn(BATCH, || rng.below(10) as f32);
    let (mut products, mut steps) = (Vec::new(), Vec::new());
    for i in 0..WARMUP + SAMPLES {
        let t = Instant::now();
        for (k, (x, w, g)) in layers.iter().enumerate() {
            black_box(matmul::forward(x, w, false, true));
            black_box(matmul::forward(g, x, true, false));
            if k > 0 {
                black_box(matmul::forward(g, w, false, false));
            }
        }
        let bare = t.elapsed().as_secs_f64();
        let t = Instant::now();
        trainer.train_step(x.clone(), y.clone(), 1e-3).unwrap();
        let step = t.elapsed().as_secs_f64();
        if i >= WARMUP {
            products.push(bare);
            steps.push(step);
        }
    }
    let (bare, step) = (median(products), median(steps));
    println!("mlp_{LAYERS} batch {BATCH}, median of {SAMPLES}:");
    println!("  bare matmuls    {:8.3} ms", bare * 1e3);
    println!(
        "  train step sgd  {:8.3} ms   ({:.0} samples/s)",
        step * 1e3,
        BATCH as f64 / step
    );
    println!("  products / step {:8.3}", bare / step);
}
