//! One training step (forward, backward, SGD update) of MLP 784-1024-1024-1024-10 at
//! batch 256 in f32, beside the bare matrix products of the same shapes.

use chainrule::backend;
use chainrule::data::Normalization;
use chainrule::nn::MlpSpec;
use chainrule::ops::matmul;
use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::rng::KeyedRng;
use chainrule::train::{TrainConfig, Trainer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{Array1, Array2, ArrayD};

const LAYERS: &str = "784-1024-1024-1024-10";
const BATCH: usize = 256;

fn random(rng: &mut KeyedRng, r: usize, c: usize) -> ArrayD<f32> {
    Array2::from_shape_simple_fn((r, c), || rng.uniform() as f32 - 0.5).into_dyn()
}

fn bench(c: &mut Criterion) {
    chainrule::backend::cpu::keep_freed_memory();
    let spec = MlpSpec::new(LAYERS, "relu", 0.0).unwrap();
    let mut group = c.benchmark_group("mlp_784_1024x3_10_b256");
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH as u64));

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
    group.bench_function("bare_matmuls", |b| {
        b.iter(|| {
            for (i, (x, w, g)) in layers.iter().enumerate() {
                criterion::black_box(matmul::forward(x, w, false, true));
                criterion::black_box(matmul::forward(g, x, true, false));
                if i > 0 {
                    criterion::black_box(matmul::forward(g, w, false, false));
                }
            }
        })
    });

    let config = TrainConfig {
        epochs: 1,
        batch_size: BATCH,
        lr: 1e-3,
        schedule: LrSchedule::Constant,
        seed: 0,
        optimizer: OptimizerConfig::new(OptimizerKind::Sgd),
        augment_shift: 0,
        checkpoint: Default::default(),
        loss_scaling: false,
        validation: Default::default(),
    };
    let mut trainer = Trainer::new(spec.clone(), config, Normalization::scale_only(1.0), &backend::cpu()).unwrap();
    let x = Array2::from_shape_simple_fn((BATCH, spec.inputs()), || rng.uniform() as f32);
    let y = Array1::from_shape_simple_fn(BATCH, || rng.below(10) as f32);
    group.bench_function("train_step_sgd", |b| {
        b.iter(|| trainer.train_step(x.clone(), y.clone(), 1e-3).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
