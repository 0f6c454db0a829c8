//! Reverse and forward accumulation on whole nets: pruning of unneeded paths, JVP
//! against the VJP-derived directional derivative, and errors while tracing.

use crate::common::*;
use chainrule::autodiff::{backward, jvp};
use chainrule::graph::Phase;
use chainrule::ops::Op;
use chainrule::plan::{self, KeepSet};
use chainrule::rng::KeyedRng;
use chainrule::{DType, GraphError, Tracer};

#[test]
fn backward_skips_a_branch_that_reaches_no_parameter() {
    let tracer = Tracer::new(DType::F64);
    let x = tracer.input("x", [4, 3]);
    let labels = tracer.constant(vec![0.0, 1.0, 1.0, 0.0], [4]).unwrap();
    let w = tracer.input("w", [2, 3]);
    let c = tracer.input("c", [4, 3]);
    let main = x
        .matmul_t(&w, false, true)
        .unwrap()
        .softmax_cross_entropy(&labels)
        .unwrap();
    // A side branch that depends only on an input nobody asked a gradient for.
    let side_inner = c.tanh().unwrap();
    let side = side_inner.exp().unwrap().squared_norm().unwrap();
    let loss = main.add(&side).unwrap();
    let (loss, w_id, x_id, branch) = (loss.id, w.id, x.id, [c.id, side_inner.id]);
    let graph = tracer.finish();

    let mut only_w = graph.clone();
    let grads = backward(&mut only_w, loss, &[w_id]).unwrap();
    for node in only_w.nodes().iter().filter(|n| n.phase == Phase::Backward) {
        assert!(
            node.inputs.iter().all(|i| !branch.contains(i)),
            "a backward node ({}) reads the unneeded branch",
            node.op.name()
        );
        assert!(
            !matches!(node.op, Op::UnaryGrad(_)),
            "activation backward ran on the side branch"
        );
    }
    let backward_ops = |g: &chainrule::Graph, outs: &[chainrule::NodeId]| {
        let s = plan::schedule(g, outs, &[], &KeepSet::everything(g));
        s.instrs
            .iter()
            .filter(|i| matches!(i, chainrule::plan::Instr::Compute(id) if g.node(*id).phase == Phase::Backward && !g.node(*id).op.is_leaf()))
            .count()
    };
    // Only the cross-entropy backward and one matmul (dW) run.
    assert_eq!(backward_ops(&only_w, &grads), 2);

    let mut with_x = graph.clone();
    let grads_x = backward(&mut with_x, loss, &[w_id, x_id]).unwrap();
    assert_eq!(
        backward_ops(&with_x, &grads_x),
        3,
        "asking for dx adds exactly one matmul"
    );
}

#[test]
fn jvp_matches_the_vjp_directional_derivative_on_a_three_layer_net() {
    let mut rng = KeyedRng::new(5, 6);
    let dims = [6usize, 5, 4, 3];
    let tracer = Tracer::new(DType::F64);
    let x = tracer.input("x", [8, dims[0]]);
    let labels = tracer.constant((0..8).map(|i| (i % 3) as f64).collect(), [8]).unwrap();
    let mut params = Vec::new();
    let mut h = x;
    for l in 0..3 {
        let w = tracer.input(&format!("w{l}"), [dims[l + 1], dims[l]]);
        let b = tracer.input(&format!("b{l}"), [dims[l + 1]]);
        let tw = tracer.input(&format!("tw{l}"), [dims[l + 1], dims[l]]);
        let tb = tracer.input(&format!("tb{l}"), [dims[l + 1]]);
        h = h.matmul_t(&w, false, true).unwrap().add(&b).unwrap();
        if l < 2 {
            h = h.gelu().unwrap().dropout(0.3).unwrap();
        }
        params.push((w.id, tw.id, format!("w{l}"), [dims[l + 1], dims[l]].to_vec()));
        params.push((b.id, tb.id, format!("b{l}"), vec![dims[l + 1]]));
    }
    let loss = h.softmax_cross_entropy(&labels).unwrap().id;
    let mut graph = tracer.finish();
    let wrt: Vec<_> = params.iter().map(|p| p.0).collect();
    let grads = backward(&mut graph, loss, &wrt).unwrap();
    let seeds: Vec<_> = params.iter().map(|p| (p.0, p.1)).collect();
    let tangent = jvp(&mut graph, &seeds, &[loss]).unwrap()[0];

    let mut bind = vec![("x".to_string(), random_array(&mut rng, &[8, dims[0]]))];
    let mut direction = Vec::new();
    for (_, _, name, shape) in &params {
        bind.push((name.clone(), random_array(&mut rng, shape)));
        let v = random_array(&mut rng, shape);
        direction.push(v.clone());
        bind.push((format!("t{name}"), v));
    }
    let bind: Vec<(&str, _)> = bind.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let mut outs = grads.clone();
    outs.push(tangent);
    let vals = run(&graph, &empty_session(), &outs, &bind);
    let vjp_dir: f64 = vals[..grads.len()]
        .iter()
        .zip(&direction)
        .map(|(g, v)| g.iter().zip(v.iter()).map(|(a, b)| a * b).sum::<f64>())
        .sum();
    let jvp_dir = *vals[grads.len()].iter().next().unwrap();
    assert!(vjp_dir.abs() > 1e-3, "degenerate direction");
    assert!(
        (vjp_dir - jvp_dir).abs() < 1e-10 * (1.0 + vjp_dir.abs()),
        "JVP {jvp_dir} vs VJP·v {vjp_dir}"
    );
}

#[test]
fn tracing_a_shape_mismatch_names_the_op_and_both_shapes() {
    let tracer = Tracer::new(DType::F32);
    let a = tracer.input("a", [3, 4]);
    let b = tracer.input("b", [5, 6]);
    let err = a.matmul(&b).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("matmul") && msg.contains("[3, 4]") && msg.contains("[5, 6]"),
        "{msg}"
    );

    let c = tracer.input("c", [3, 5]);
    let err = a.add(&c).unwrap_err();
    assert!(matches!(err, GraphError::ShapeMismatch { op: "add", .. }), "{err}");
    assert!(err.to_string().contains("[3, 5]"));

    let labels = tracer.input("labels", [2]);
    let err = a.softmax_cross_entropy(&labels).unwrap_err().to_string();
    assert!(err.contains("softmax_cross_entropy") && err.contains("[2]"), "{err}");
    assert!(a.dropout(1.0).is_err());
}

#[test]
fn backward_needs_a_scalar_loss() {
    let tracer = Tracer::new(DType::F64);
    let a = tracer.input("a", [3]);
    let y = a.tanh().unwrap().id;
    let a = a.id;
    let mut g = tracer.finish();
    let err = backward(&mut g, y, &[a]).unwrap_err().to_string();
    assert!(err.contains("scalar") && err.contains("[3]"), "{err}");
}
