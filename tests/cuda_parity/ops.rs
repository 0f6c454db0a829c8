//! Single ops and products on the GPU against the CPU: every op forward and its VJP, TF32
//! and bf16 products within their bounds, casts bit for bit.

use super::*;

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn every_op_forward_and_vjp_matches_the_cpu() {
    let be = gpu(false);
    let b = F32_BOUND;
    check(&be, b, "mm", &[&[33, 65], &[65, 17]], |_, x| x[0].matmul(&x[1]));
    check(&be, b, "mm_ta", &[&[65, 33], &[65, 17]], |_, x| {
        x[0].matmul_t(&x[1], true, false)
    });
    check(&be, b, "mm_tb", &[&[33, 65], &[17, 65]], |_, x| {
        x[0].matmul_t(&x[1], false, true)
    });
    check(&be, b, "mm_tab", &[&[65, 33], &[17, 65]], |_, x| {
        x[0].matmul_t(&x[1], true, true)
    });
    for (name, a, c) in [
        ("same", &[7usize, 300][..], &[7usize, 300][..]),
        ("bias", &[129, 300][..], &[300][..]),
        ("col", &[40, 3][..], &[40, 1][..]),
        ("scalar", &[5, 6][..], &[][..]),
    ] {
        check(&be, b, &format!("add_{name}"), &[a, c], |_, x| x[0].add(&x[1]));
        check(&be, b, &format!("sub_{name}"), &[a, c], |_, x| x[0].sub(&x[1]));
        check(&be, b, &format!("mul_{name}"), &[a, c], |_, x| x[0].mul(&x[1]));
    }
    check(&be, b, "scale", &[&[50, 7]], |_, x| x[0].scale(-2.5));
    check(&be, b, "neg", &[&[1000]], |_, x| x[0].neg());
    check(&be, b, "sum", &[&[300, 70]], |_, x| x[0].sum());
    check(&be, b, "sum0", &[&[300, 70]], |_, x| x[0].sum_axis(0));
    check(&be, b, "sum1", &[&[300, 2000]], |_, x| x[0].sum_axis(1));
    check(&be, b, "mean0", &[&[2000, 30]], |_, x| x[0].mean_axis(0));
    check(&be, b, "mean3d", &[&[4, 50, 6]], |_, x| x[0].mean_axis(1));
    for shape in [&[129usize, 257][..], &[5][..]] {
        check(&be, b, "relu", &[shape], |_, x| x[0].relu());
        check(&be, b, "leaky", &[shape], |_, x| x[0].leaky_relu(0.1));
        check(&be, b, "gelu", &[shape], |_, x| x[0].gelu());
        check(&be, b, "silu", &[shape], |_, x| {
            x[0].activation(chainrule::ops::Activation::Silu)
        });
        check(&be, b, "sigmoid", &[shape], |_, x| x[0].sigmoid());
        check(&be, b, "tanh", &[shape], |_, x| x[0].tanh());
        check(&be, b, "exp_log", &[shape], |_, x| x[0].exp()?.log());
        check(&be, b, "dropout", &[shape], |_, x| x[0].dropout(0.3));
    }
    // Rows wider than a block, narrower than a warp, and one value wide; leading axes folded.
    for (name, shape) in [
        ("wide", &[33usize, 1000][..]),
        ("narrow", &[700, 10][..]),
        ("one", &[9, 1][..]),
        ("3d", &[4, 5, 300][..]),
    ] {
        check(&be, b, &format!("layer_norm_{name}"), &[shape], |_, x| {
            x[0].layer_norm(1e-5)
        });
        check(&be, b, &format!("rms_norm_{name}"), &[shape], |_, x| {
            x[0].rms_norm(1e-5)
        });
    }
    // BatchNorm's columns: many, a tall batch, the fewest rows.
    for (name, shape) in [("wide", [33usize, 1000]), ("tall", [700, 10]), ("two_rows", [2, 5])] {
        check(&be, b, &format!("batch_norm_{name}"), &[&shape], |_, x| {
            x[0].batch_norm(1e-5)
        });
    }
    check(&be, b, "xent", &[&[300, 10]], |t, x| {
        let labels = t.constant((0..300).map(|i| (i * 7 % 10) as f64).collect(), [300])?;
        x[0].scale(4.0)?.softmax_cross_entropy(&labels)
    });
    check(&be, b, "mse", &[&[100, 3], &[100, 3]], |_, x| x[0].mse(&x[1]));
    check(&be, b, "inner", &[&[700, 3], &[700, 3]], |_, x| x[0].inner(&x[1]));
    check(&be, b, "sqnorm", &[&[5000]], |_, x| x[0].squared_norm());
    check(
        &be,
        b,
        "mlp",
        &[&[64, 50], &[40, 50], &[40], &[10, 40], &[10]],
        |t, x| {
            let h = x[0].matmul_t(&x[1], false, true)?.add(&x[2])?.relu()?.dropout(0.2)?;
            let logits = h.matmul_t(&x[3], false, true)?.add(&x[4])?;
            let labels = t.constant((0..64).map(|i| (i % 10) as f64).collect(), [64])?;
            logits.softmax_cross_entropy(&labels)
        },
    );
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn tf32_matmul_stays_within_its_documented_bound() {
    let be = gpu(true);
    check(&be, TF32_BOUND, "mm_tf32", &[&[256, 512], &[512, 128]], |_, x| {
        x[0].matmul(&x[1])
    });
    check(
        &be,
        TF32_BOUND,
        "mlp_tf32",
        &[&[128, 256], &[64, 256], &[64]],
        |_, x| x[0].matmul_t(&x[1], false, true)?.add(&x[2])?.gelu(),
    );
}
#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn bf16_matrix_products_stay_within_their_documented_bound() {
    let be = gpu(false);
    let be = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, Precision::Bf16).unwrap();
    check(&be, BF16_BOUND, "mm_bf16", &[&[256, 512], &[512, 128]], |_, x| {
        x[0].matmul(&x[1])
    });
    check(&be, BF16_BOUND, "mm_bf16_tb", &[&[64, 300], &[100, 300]], |_, x| {
        x[0].matmul_t(&x[1], false, true)
    });
    check(
        &be,
        BF16_NET_BOUND,
        "mlp_bf16",
        &[&[128, 256], &[64, 256], &[64], &[10, 64], &[10]],
        |t, x| {
            let h = x[0].matmul_t(&x[1], false, true)?.add(&x[2])?.relu()?;
            let labels = t.constant((0..128).map(|i| (i % 10) as f64).collect(), [128])?;
            h.matmul_t(&x[3], false, true)?
                .add(&x[4])?
                .softmax_cross_entropy(&labels)
        },
    );
}

#[test]
#[ignore = "needs a GPU: scripts/gpu-check.sh runs it with --include-ignored"]
fn casts_round_to_nearest_even_exactly_as_the_half_crate_does() {
    let be = gpu(false);
    // Ordinary values, ties, subnormals, overflow past f16's 65504, infinities, NaN.
    let mut rng = KeyedRng::new(23, 23);
    let mut values: Vec<f32> = (0..4096)
        .map(|_| ((rng.uniform() - 0.5) * 2f64.powi(rng.below(80) as i32 - 40)) as f32)
        .collect();
    values.extend([
        0.0,
        -0.0,
        1.0 + f32::EPSILON,
        1.0 + 2f32.powi(-11),
        65504.0,
        65520.0,
        1e6,
        -1e6,
        5.96e-8,
        1e-40,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ]);
    let host = ArrayD::from_shape_vec(vec![values.len()], values.clone()).unwrap();
    for (low, reference) in [
        (
            Precision::Bf16,
            (|v: f32| half::bf16::from_f32(v).to_f32()) as fn(f32) -> f32,
        ),
        (Precision::F16, |v: f32| half::f16::from_f32(v).to_f32()),
    ] {
        let b = CudaBackend::open_with(be.ordinal, MemoryTracker::new(None), false, low).unwrap();
        let t = b.upload(&host, Category::Temporaries).unwrap();
        let got = b.download(&cuda::cast::rounded(&b, &t).unwrap()).unwrap();
        for (&v, &g) in values.iter().zip(got.iter()) {
            let want = reference(v);
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "{low:?}: {v:e} became {g:e}, the half crate gives {want:e}"
            );
        }
    }
}
