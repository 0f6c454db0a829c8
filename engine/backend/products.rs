//! `bench`'s yardstick: the matrix products one training step of an MLP runs, on random
//! operands, written once against the executor's [`Backend`] so every device times the
//! same set.

use super::device::BareProducts;
use crate::exec::{Backend, ExecError, Out};
use crate::memory::Category;
use crate::ops::{Op, RunContext};
use crate::plan::fp8::{self, Fp8Format};
use crate::plan::Storage;
use crate::rng::{stream, KeyedRng};
use crate::tensor::Shape;
use ndarray::{Array2, ArrayD};
use std::sync::Arc;
use std::time::Instant;

/// Per layer y = x·Wᵀ, dW = gᵀ·x, and dx = g·W for every layer but the first (the input
/// needs no gradient).
pub struct StepProducts<T> {
    layers: Vec<(T, T, T)>,
}

fn random(rng: &mut KeyedRng, rows: usize, cols: usize) -> ArrayD<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform() as f32 - 0.5).into_dyn()
}

impl<T> StepProducts<T> {
    /// Operands for Linears of `(in, out)` features at `batch`, each made into a tensor by `make`.
    pub fn new(
        linears: &[(usize, usize)],
        batch: usize,
        make: impl Fn(ArrayD<f32>) -> Result<T, ExecError>,
    ) -> Result<Self, ExecError> {
        let mut rng = KeyedRng::new(1, stream::TEST_DATA);
        let mut layers = Vec::new();
        for &(fan_in, fan_out) in linears {
            let (x, wt, g) = (
                random(&mut rng, batch, fan_in),
                random(&mut rng, fan_out, fan_in),
                random(&mut rng, batch, fan_out),
            );
            layers.push((make(x)?, make(wt)?, make(g)?));
        }
        Ok(StepProducts { layers })
    }

    /// These products, to be run on `backend`; `sync` waits for it.
    pub fn on<B, S>(self, backend: Arc<B>, sync: S) -> OnBackend<B, S>
    where
        B: Backend<Tensor = T>,
        S: Fn() -> Result<(), ExecError>,
    {
        OnBackend {
            products: self,
            backend,
            sync,
        }
    }
}

pub struct OnBackend<B: Backend, S> {
    products: StepProducts<B::Tensor>,
    backend: Arc<B>,
    sync: S,
}

impl<B: Backend, S: Fn() -> Result<(), ExecError>> BareProducts for OnBackend<B, S> {
    fn time(&self) -> Result<f64, ExecError> {
        let ctx = RunContext {
            seed: 0,
            step: 0,
            training: true,
            first_row: 0,
        };
        let be = self.backend.as_ref();
        // The step's products, in the formats a `--dtype fp8` step gives them (a gradient
        // is always the first operand here).
        let mm = |a: &B::Tensor, b: &B::Tensor, ta: bool, tb: bool, first: Fp8Format| -> Result<B::Tensor, ExecError> {
            let (sa, sb) = (B::tensor_shape(a), B::tensor_shape(b));
            let m = if ta { sa[1] } else { sa[0] };
            let n = if tb { sb[0] } else { sb[1] };
            let k = if ta { sa[0] } else { sa[1] };
            let op = Op::MatMul {
                trans_a: ta,
                trans_b: tb,
            };
            let shape = Shape::new(&[m, n]);
            let out = Out {
                shape: &shape,
                category: Category::Temporaries,
                storage: Storage::F32,
                fp8: fp8::takes_fp8(m, n, k).then_some([first, Fp8Format::E4M3]),
            };
            be.compute(&op, &[a, b], out, &ctx)
        };
        (self.sync)()?;
        let t = Instant::now();
        for (i, (x, w, g)) in self.products.layers.iter().enumerate() {
            std::hint::black_box(mm(x, w, false, true, Fp8Format::E4M3)?);
            std::hint::black_box(mm(g, x, true, false, fp8::GRADIENT_FORMAT)?);
            if i > 0 {
                std::hint::black_box(mm(g, w, false, false, fp8::GRADIENT_FORMAT)?);
            }
        }
        (self.sync)()?;
        Ok(t.elapsed().as_secs_f64())
    }
}
