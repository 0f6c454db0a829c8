//! Every op's VJP and JVP against central finite differences in f64, on random inputs of
//! several shapes (broadcasting and non-square included), and two textbook closed forms.

use crate::common::*;
use chainrule::autodiff::{backward, jvp};
use chainrule::rng::KeyedRng;
use chainrule::{DType, GraphError, Tracer, Var};
use ndarray::{Array1, Array2, ArrayD};

const H: f64 = 1e-6;
const TOL: f64 = 1e-6;

/// Checks `f` at random inputs of `shapes`: reverse-mode gradients of ⟨f(x), r⟩ against
/// central differences for every element, and the JVP along a random direction against
/// the directional difference quotient.
fn check(label: &str, shapes: &[&[usize]], f: impl for<'t> Fn(&'t Tracer, &[Var<'t>]) -> Result<Var<'t>, GraphError>) {
    let mut rng = KeyedRng::new(label.len() as u64 * 7919 + shapes.len() as u64, 11);
    let tracer = Tracer::new(DType::F64);
    let xs: Vec<Var> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| tracer.input(&format!("x{i}"), *s))
        .collect();
    let ts: Vec<Var> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| tracer.input(&format!("t{i}"), *s))
        .collect();
    let out = f(&tracer, &xs).unwrap();
    let out_shape = out.shape();
    let r = random_array(&mut rng, out_shape.dims());
    let r = tracer.constant(r.iter().copied().collect(), out_shape).unwrap();
    let loss = out.inner(&r).unwrap();
    let (loss_id, x_ids, t_ids) = (
        loss.id,
        xs.iter().map(|x| x.id).collect::<Vec<_>>(),
        ts.iter().map(|t| t.id).collect::<Vec<_>>(),
    );
    let mut graph = tracer.finish();
    let grads = backward(&mut graph, loss_id, &x_ids).unwrap();
    let seeds: Vec<_> = x_ids.iter().copied().zip(t_ids.iter().copied()).collect();
    let tangent = jvp(&mut graph, &seeds, &[loss_id]).unwrap()[0];

    let values: Vec<ArrayD<f64>> = shapes.iter().map(|s| random_array(&mut rng, s)).collect();
    let direction: Vec<ArrayD<f64>> = shapes.iter().map(|s| random_array(&mut rng, s)).collect();
    let session = empty_session();
    let bind = |vals: &[ArrayD<f64>]| -> Vec<(String, ArrayD<f64>)> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| (format!("x{i}"), v.clone()))
            .chain(direction.iter().enumerate().map(|(i, v)| (format!("t{i}"), v.clone())))
            .collect()
    };
    let eval = |outputs: &[chainrule::NodeId], vals: &[ArrayD<f64>]| {
        let b = bind(vals);
        let b: Vec<(&str, ArrayD<f64>)> = b.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        run(&graph, &session, outputs, &b)
    };
    let loss_at = |vals: &[ArrayD<f64>]| eval(&[loss_id], vals)[0].iter().next().copied().unwrap();

    let mut outputs = grads.clone();
    outputs.push(tangent);
    let got = eval(&outputs, &values);
    for (i, g) in got[..shapes.len()].iter().enumerate() {
        for j in 0..values[i].len() {
            let mut plus = values.clone();
            let mut minus = values.clone();
            plus[i].as_slice_mut().unwrap()[j] += H;
            minus[i].as_slice_mut().unwrap()[j] -= H;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * H);
            let an = g.as_slice().unwrap()[j];
            assert!(
                (fd - an).abs() <= TOL * (1.0 + fd.abs()),
                "{label}: d/dx{i}[{j}] analytic {an} vs finite difference {fd}"
            );
        }
    }
    let along = |s: f64| -> Vec<ArrayD<f64>> { values.iter().zip(&direction).map(|(v, d)| v + &(d * s)).collect() };
    let fd = (loss_at(&along(H)) - loss_at(&along(-H))) / (2.0 * H);
    let an = got[shapes.len()].iter().next().copied().unwrap();
    assert!(
        (fd - an).abs() <= TOL * (1.0 + fd.abs()),
        "{label}: JVP {an} vs finite difference {fd}"
    );
}

#[test]
fn matmul_all_transpose_combinations() {
    check("mm", &[&[3, 4], &[4, 5]], |_, x| x[0].matmul(&x[1]));
    check("mm_ta", &[&[4, 3], &[4, 5]], |_, x| x[0].matmul_t(&x[1], true, false));
    check("mm_tb", &[&[3, 4], &[5, 4]], |_, x| x[0].matmul_t(&x[1], false, true));
    check("mm_tab", &[&[4, 3], &[5, 4]], |_, x| x[0].matmul_t(&x[1], true, true));
    check("mm_vec", &[&[1, 6], &[6, 1]], |_, x| x[0].matmul(&x[1]));
}

#[test]
fn add_sub_mul_with_broadcasting() {
    for (name, a, b) in [
        ("same", &[3usize, 4][..], &[3usize, 4][..]),
        ("bias", &[5, 3][..], &[3][..]),
        ("column", &[4, 3][..], &[4, 1][..]),
        ("scalar", &[2, 3][..], &[][..]),
        ("outer", &[4, 1][..], &[1, 3][..]),
    ] {
        check(&format!("add_{name}"), &[a, b], |_, x| x[0].add(&x[1]));
        check(&format!("sub_{name}"), &[a, b], |_, x| x[0].sub(&x[1]));
        check(&format!("mul_{name}"), &[a, b], |_, x| x[0].mul(&x[1]));
        check(&format!("rmul_{name}"), &[b, a], |_, x| x[0].mul(&x[1]));
    }
}

#[test]
fn scale_and_neg() {
    check("scale", &[&[3, 2]], |_, x| x[0].scale(-2.5));
    check("neg", &[&[7]], |_, x| x[0].neg());
}

#[test]
fn sums_and_means() {
    check("sum", &[&[3, 4]], |_, x| x[0].sum());
    check("sum0", &[&[3, 4]], |_, x| x[0].sum_axis(0));
    check("sum1", &[&[3, 4]], |_, x| x[0].sum_axis(1));
    check("mean", &[&[2, 5]], |_, x| x[0].mean());
    check("mean0", &[&[3, 5]], |_, x| x[0].mean_axis(0));
    check("mean1", &[&[3, 5]], |_, x| x[0].mean_axis(1));
    check("sum3d", &[&[2, 3, 2]], |_, x| x[0].sum_axis(1));
}

#[test]
fn activations() {
    for shape in [&[4usize, 3][..], &[7][..]] {
        check("relu", &[shape], |_, x| x[0].relu());
        check("leaky", &[shape], |_, x| x[0].leaky_relu(0.1));
        check("leaky_neg", &[shape], |_, x| x[0].leaky_relu(-0.3));
        check("gelu", &[shape], |_, x| x[0].gelu());
        check("silu", &[shape], |_, x| {
            x[0].activation(chainrule::ops::Activation::Silu)
        });
        check("sigmoid", &[shape], |_, x| x[0].sigmoid());
        check("tanh", &[shape], |_, x| x[0].tanh());
        check("exp", &[shape], |_, x| x[0].exp());
        // log needs positive inputs: log(exp(x)) composes two ops.
        check("log", &[shape], |_, x| x[0].exp()?.log());
    }
}

#[test]
fn layer_norm_and_rms_norm_over_the_last_axis_with_affine_parameters() {
    for shape in [&[4usize, 5][..], &[2, 3, 7][..], &[3, 1][..]] {
        check("layer_norm", &[shape], |_, x| x[0].layer_norm(1e-5));
        check("rms_norm", &[shape], |_, x| x[0].rms_norm(1e-5));
    }
    // As torch.nn.LayerNorm(5) computes: normalized, times a weight, plus a bias.
    check("layer_norm_affine", &[&[4, 5], &[5], &[5]], |_, x| {
        x[0].layer_norm(1e-5)?.mul(&x[1])?.add(&x[2])
    });
    check("rms_norm_weight", &[&[6, 5], &[5]], |_, x| {
        x[0].rms_norm(1e-6)?.mul(&x[1])
    });
    // A large eps, where it matters to the derivative too.
    check("layer_norm_eps", &[&[3, 4]], |_, x| x[0].layer_norm(0.5));
}

/// BatchNorm in training: each column by the batch's statistics, the gradient flowing
/// through them to every row; with affine parameters, a large eps, and two rows (the fewest).
#[test]
fn batch_norm_over_the_batch_with_affine_parameters() {
    for shape in [&[5usize, 3][..], &[2, 4], &[7, 1]] {
        check("batch_norm", &[shape], |_, x| x[0].batch_norm(1e-5));
    }
    check("batch_norm_affine", &[&[6, 4], &[4], &[4]], |_, x| {
        x[0].batch_norm(1e-5)?.mul(&x[1])?.add(&x[2])
    });
    check("batch_norm_eps", &[&[4, 3]], |_, x| x[0].batch_norm(0.5));
}

/// One pre-norm residual block `x + W2(act(W1 n) [⊙ W3 n])`, n = LayerNorm(x), RMSNorm(x)
/// or BatchNorm(x) with affine parameters, and a residual block without a norm: the nets' own blocks.
#[test]
fn residual_and_gated_blocks_end_to_end() {
    use chainrule::ops::Activation;
    fn linear<'t>(x: &Var<'t>, w: &Var<'t>, b: &Var<'t>) -> Result<Var<'t>, GraphError> {
        x.matmul_t(w, false, true)?.add(b)
    }
    // x, norm weight, norm bias, W1, b1, W2, b2, W3, b3: width 4, expansion 2.
    let shapes: &[&[usize]] = &[&[3, 4], &[4], &[4], &[8, 4], &[8], &[4, 8], &[4], &[8, 4], &[8]];
    check("residual_layer_norm_gelu", shapes, |_, p| {
        let n = p[0].layer_norm(1e-5)?.mul(&p[1])?.add(&p[2])?;
        let h = linear(&n, &p[3], &p[4])?.gelu()?;
        p[0].add(&linear(&h, &p[5], &p[6])?)
    });
    check("swiglu_rms_norm", shapes, |_, p| {
        let n = p[0].rms_norm(1e-6)?.mul(&p[1])?;
        let gate = linear(&n, &p[7], &p[8])?;
        let h = linear(&n, &p[3], &p[4])?.activation(Activation::Silu)?.mul(&gate)?;
        p[0].add(&linear(&h, &p[5], &p[6])?)
    });
    check("residual_batch_norm_relu", shapes, |_, p| {
        let n = p[0].batch_norm(1e-5)?.mul(&p[1])?.add(&p[2])?;
        let h = linear(&n, &p[3], &p[4])?.relu()?;
        p[0].add(&linear(&h, &p[5], &p[6])?)
    });
    check("residual_without_norm", shapes, |_, p| {
        let h = linear(&p[0], &p[3], &p[4])?.tanh()?;
        p[0].add(&linear(&h, &p[5], &p[6])?)
    });
}

#[test]
fn dropout_replays_its_mask_in_backward() {
    check("dropout", &[&[6, 5]], |_, x| x[0].dropout(0.4));
    check("dropout_twice", &[&[9]], |_, x| x[0].dropout(0.5)?.dropout(0.2));
}

#[test]
fn softmax_cross_entropy_fused() {
    check("xent", &[&[4, 3]], |t, x| {
        let labels = t.constant(vec![0.0, 2.0, 1.0, 2.0], [4])?;
        x[0].softmax_cross_entropy(&labels)
    });
    // Large logits: the fused form must not overflow.
    check("xent_large", &[&[2, 5]], |t, x| {
        let labels = t.constant(vec![4.0, 0.0], [2])?;
        x[0].scale(300.0)?.softmax_cross_entropy(&labels)?.scale(1.0 / 300.0)
    });
}

#[test]
fn mse_inner_squared_norm() {
    check("mse", &[&[3, 2], &[3, 2]], |_, x| x[0].mse(&x[1]));
    check("inner", &[&[4, 3], &[4, 3]], |_, x| x[0].inner(&x[1]));
    check("sqnorm", &[&[5, 2]], |_, x| x[0].squared_norm());
}

#[test]
fn a_tensor_used_twice_accumulates_its_gradient() {
    check("square", &[&[3, 3]], |_, x| x[0].mul(&x[0]));
    check("diamond", &[&[2, 4]], |_, x| {
        let a = x[0].tanh()?;
        let b = x[0].sigmoid()?;
        a.mul(&b)?.add(&x[0])
    });
}

#[test]
fn two_layer_mlp_end_to_end() {
    check("mlp", &[&[5, 4], &[3, 4], &[3], &[2, 3], &[2]], |t, x| {
        let h = x[0].matmul_t(&x[1], false, true)?.add(&x[2])?.gelu()?;
        let logits = h.matmul_t(&x[3], false, true)?.add(&x[4])?;
        let labels = t.constant(vec![1.0, 0.0, 1.0, 1.0, 0.0], [5])?;
        logits.softmax_cross_entropy(&labels)
    });
}

/// z = (⟨x,w⟩ − y)²  ⇒  ∂z/∂w = 2(⟨x,w⟩ − y)xᵀ.
#[test]
fn textbook_squared_error_of_inner_product() {
    let mut rng = KeyedRng::new(1, 2);
    let tracer = Tracer::new(DType::F64);
    let x = tracer.input("x", [6]);
    let w = tracer.input("w", [6]);
    let y = tracer.input("y", []);
    let z = x.inner(&w).unwrap().sub(&y).unwrap().squared_norm().unwrap();
    let (z, w_id) = (z.id, w.id);
    let mut g = tracer.finish();
    let dw = backward(&mut g, z, &[w_id]).unwrap()[0];
    let (xv, wv, yv) = (
        random_array(&mut rng, &[6]),
        random_array(&mut rng, &[6]),
        random_array(&mut rng, &[]),
    );
    let got = run(
        &g,
        &empty_session(),
        &[dw],
        &[("x", xv.clone()), ("w", wv.clone()), ("y", yv.clone())],
    );
    let r = xv.iter().zip(wv.iter()).map(|(a, b)| a * b).sum::<f64>() - yv.iter().next().unwrap();
    let expected = xv.mapv(|v| 2.0 * r * v);
    assert!(max_abs_diff(&got[0], &expected) < 1e-12);
}

/// z = ‖Xw − y‖²  ⇒  ∂z/∂w = 2(Xw − y)ᵀX.
#[test]
fn textbook_least_squares() {
    let mut rng = KeyedRng::new(3, 4);
    let tracer = Tracer::new(DType::F64);
    let x = tracer.input("X", [7, 3]);
    let w = tracer.input("w", [3, 1]);
    let y = tracer.input("y", [7, 1]);
    let z = x.matmul(&w).unwrap().sub(&y).unwrap().squared_norm().unwrap();
    let (z, w_id) = (z.id, w.id);
    let mut g = tracer.finish();
    let dw = backward(&mut g, z, &[w_id]).unwrap()[0];
    let (xv, wv, yv) = (
        random_array(&mut rng, &[7, 3]),
        random_array(&mut rng, &[3, 1]),
        random_array(&mut rng, &[7, 1]),
    );
    let got = run(
        &g,
        &empty_session(),
        &[dw],
        &[("X", xv.clone()), ("w", wv.clone()), ("y", yv.clone())],
    );
    let x2: Array2<f64> = xv.into_dimensionality().unwrap();
    let w2: Array2<f64> = wv.into_dimensionality().unwrap();
    let y2: Array2<f64> = yv.into_dimensionality().unwrap();
    let resid = x2.dot(&w2) - &y2;
    let expected = (resid.t().dot(&x2) * 2.0).reversed_axes().into_dyn();
    assert!(max_abs_diff(&got[0], &expected) < 1e-12);
    let _ = Array1::<f64>::zeros(1);
}
