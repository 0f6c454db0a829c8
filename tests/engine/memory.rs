//! Memory accounting: measured peaks equal the schedule's prediction and the sum of the
//! saved tensors worked out by hand, and saved activations grow linearly with depth.

use chainrule::autodiff::backward;
use chainrule::backend::cpu::{self, Session};
use chainrule::memory::{Category, MemoryTracker};
use chainrule::ops::RunContext;
use chainrule::plan::{self, KeepSet};
use chainrule::rng::KeyedRng;
use chainrule::{DType, Tracer};
use ndarray::ArrayD;

const B: usize = 16;
const D: usize = 12;

/// One training step of `n` layers `relu(h·Wᵀ + b)` of width D with a cross-entropy loss.
/// Returns (measured report, predicted report).
fn step_of_chain(n: usize) -> (chainrule::memory::MemoryReport, chainrule::memory::MemoryReport) {
    let tracer = Tracer::new(DType::F32);
    let x = tracer.input("x", [B, D]);
    let labels = tracer.input("labels", [B]);
    let mut h = x;
    let mut params = Vec::new();
    for l in 0..n {
        let w = tracer.parameter(&format!("w{l}"), [D, D]);
        let b = tracer.parameter(&format!("b{l}"), [D]);
        h = h.matmul_t(&w, false, true).unwrap().add(&b).unwrap().relu().unwrap();
        params.push(w.id);
        params.push(b.id);
    }
    let loss = h.softmax_cross_entropy(&labels).unwrap().id;
    let mut graph = tracer.finish();
    let grads = backward(&mut graph, loss, &params).unwrap();
    let mut outputs = vec![loss];
    outputs.extend(&grads);
    let schedule = plan::schedule(&graph, &outputs, &grads, &KeepSet::everything(&graph));

    let tracker = MemoryTracker::new(None);
    let mut session = Session::<f32>::new(tracker.clone());
    let mut rng = KeyedRng::new(1, 1);
    for (id, name) in graph.parameters() {
        let shape = graph.shape(id).dims().to_vec();
        let v = ArrayD::from_shape_fn(shape, |_| (rng.uniform() as f32 - 0.5) * 0.5);
        session.set_param(name, v).unwrap();
    }
    let resident = tracker.report();
    let predicted = schedule.predict(&graph, &resident);
    tracker.reset_peak();
    let xv = ArrayD::from_shape_fn(vec![B, D], |_| rng.uniform() as f32);
    let lv = ArrayD::from_shape_fn(vec![B], |i| (i[0] % D) as f32);
    let ctx = RunContext {
        seed: 1,
        step: 0,
        training: true,
        first_row: 0,
    };
    let out = cpu::run(&graph, &schedule, &session, vec![("x", xv), ("labels", lv)], &ctx).unwrap();
    let measured = tracker.report();
    drop(out);
    (measured, predicted)
}

#[test]
fn saved_activations_equal_the_hand_count_and_grow_linearly() {
    let f = 4u64;
    let mut previous = None;
    for n in [1usize, 2, 3, 5, 8] {
        let (measured, predicted) = step_of_chain(n);
        // Saved for backward: the input x (for dW₁), each layer's ReLU output (for ReLU's
        // derivative and the next dW), and the labels (for the loss gradient). Matmul and
        // bias-add outputs are read only by the forward and are freed at once.
        let by_hand = (B * D) as u64 * f + n as u64 * (B * D) as u64 * f + B as u64 * f;
        assert_eq!(measured.peak.saved_activations, by_hand, "depth {n}");
        assert_eq!(predicted, measured, "prediction differs from measurement at depth {n}");
        let params = n as u64 * (D * D + D) as u64 * f;
        assert_eq!(measured.live.parameters, params);
        assert_eq!(measured.peak.gradients, params);
        if let Some((pn, pbytes)) = previous {
            let per_layer = (measured.peak.saved_activations - pbytes) / (n - pn) as u64;
            assert_eq!(per_layer, (B * D) as u64 * f, "growth per layer at depth {n}");
        }
        previous = Some((n, measured.peak.saved_activations));
        assert_eq!(
            measured.live.get(Category::SavedActivations),
            0,
            "all activations freed after the step"
        );
    }
}

#[test]
fn an_allocation_past_the_limit_is_an_error_naming_the_bytes() {
    let tracker = MemoryTracker::new(Some(1000));
    let mut session = Session::<f32>::new(tracker);
    session.set_param("a", ArrayD::zeros(vec![200])).unwrap();
    let err = session
        .set_param("b", ArrayD::zeros(vec![100]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("400 bytes requested") && err.contains("200 free"), "{err}");
}

#[test]
fn a_replayed_window_raises_the_peaks_to_the_recorded_ones() {
    use chainrule::memory::Category;
    let tracker = MemoryTracker::new(None);
    let resident = tracker.allocate(Category::Parameters, 100).unwrap();
    tracker.reset_peak();
    {
        // The recorded step: 40 then 70 bytes of activations on top of the parameters.
        let _a = tracker.allocate(Category::SavedActivations, 40).unwrap();
        let _b = tracker.allocate(Category::Temporaries, 70).unwrap();
    }
    let window = tracker.report();
    assert_eq!(window.peak_total, 210);
    // A replay allocates nothing on the host; the tracker is told the step's peaks again.
    tracker.reset_peak();
    assert_eq!(tracker.report().peak_total, 100);
    tracker.replay(&window);
    let replayed = tracker.report();
    assert_eq!(replayed.peak_total, 210);
    assert_eq!(replayed.at_peak, window.at_peak);
    assert_eq!(replayed.peak.get(Category::Temporaries), 70);
    assert_eq!(replayed.live.total(), 100, "a replay leaves nothing live");
    // A window already past the recorded peak keeps its own.
    let _big = tracker.allocate(Category::Temporaries, 500).unwrap();
    tracker.replay(&window);
    assert_eq!(tracker.report().peak_total, 600);
    drop(resident);
}
