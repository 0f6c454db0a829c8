//! The CPU's products at one MLP step's shapes, one line each (median of 30, GFLOP/s):
//! per Linear, the forward `x · Wᵀ`, the weight gradient `gᵀ · x` and the input gradient
//! `g · W` (not for the first layer, whose input needs none). `chainrule bench` times the
//! same set as one figure; this shows which shape lags. Run it on a quiet machine:
//!   cargo run --release --example gemm_shapes -- 784-1024-1024-1024-10 256
use chainrule::ops::cpu_gemm::product;
use ndarray::Array2;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn filled(rows: usize, cols: usize, salt: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| ((i * 7 + j * 13 + salt) % 17) as f32 * 0.01)
}

fn main() {
    chainrule::backend::cpu::keep_freed_memory();
    // As the command line runs its commands: on a thread of the pool the products use.
    chainrule::backend::cpu::run_on_pool_thread(time_each_product);
}

fn time_each_product() {
    let args: Vec<String> = std::env::args().collect();
    let layers = args.get(1).map_or("784-1024-1024-1024-10", String::as_str);
    let widths: Vec<usize> = layers
        .split('-')
        .map(|w| w.parse().expect("layers as 784-1024-10"))
        .collect();
    let batch: usize = args.get(2).map_or(256, |s| s.parse().expect("a batch size"));
    let (mut flops, mut seconds) = (0.0, 0.0);
    for (i, w) in widths.windows(2).enumerate() {
        let (fan_in, fan_out) = (w[0], w[1]);
        let (x, weight, g) = (
            filled(batch, fan_in, 1),
            filled(fan_out, fan_in, 2),
            filled(batch, fan_out, 3),
        );
        let products: [(&str, &dyn Fn() -> Array2<f32>); 3] = [
            ("y = x·Wᵀ", &|| product(&x.view(), &weight.t())),
            ("dW = gᵀ·x", &|| product(&g.t(), &x.view())),
            ("dx = g·W", &|| product(&g.view(), &weight.view())),
        ];
        for (name, run) in products.iter().take(if i == 0 { 2 } else { 3 }) {
            let times = (0..33).map(|_| {
                let started = Instant::now();
                std::hint::black_box(run());
                started.elapsed().as_secs_f64()
            });
            let s = median(times.skip(3).collect());
            let f = 2.0 * (batch * fan_in * fan_out) as f64;
            (flops, seconds) = (flops + f, seconds + s);
            println!(
                "{fan_in:>6}x{fan_out:<6} {name:<10} {:8.3} ms {:7.1} GFLOP/s",
                s * 1e3,
                f / s / 1e9
            );
        }
    }
    println!(
        "all products       {:8.3} ms {:7.1} GFLOP/s",
        seconds * 1e3,
        flops / seconds / 1e9
    );
}
