//! The step protocol's order (`backend/step_protocol.rs`), heard through primitives that only
//! record what they are asked. On a GPU each primitive is one launch (or an NCCL call, or a
//! stream wait), so this order is the GPU step's launch order around its schedule; the lists
//! below are the order the GPU's step enqueued before the protocol was shared (its
//! `enqueue_step`, `run_shard`, `run_updating` and `InBackward`), written out by hand.

use chainrule::autodiff::LOSS_SCALE_INPUT;
use chainrule::backend::cpu::{Buffer, Cpu, Session};
use chainrule::backend::step_protocol::{self, StepPrimitives};
use chainrule::backend::{Batch, Precision, TrainingStep};
use chainrule::dist::{group::StepShare, threads, Collective, Group};
use chainrule::exec::{output_ready_points, ExecError, Program};
use chainrule::kernels::GuardFlag;
use chainrule::memory::Category;
use chainrule::nn::{Mlp, MlpSpec};
use chainrule::plan::CheckpointPolicy;
use chainrule::train::{StepOptions, StepProgram};
use ndarray::{Array1, Array2, ArrayD};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

/// Primitives that record each call (tensors named by their shape) and do nothing else.
struct Recorder {
    session: Session<f32>,
    loss_scaled: bool,
    clips: bool,
    calls: RefCell<Vec<String>>,
}

fn shape(t: &Buffer<f32>) -> String {
    format!("{:?}", t.data.shape())
}

impl Recorder {
    fn say(&self, call: String) {
        self.calls.borrow_mut().push(call);
    }
}

impl StepPrimitives for Recorder {
    type Backend = Cpu<f32>;
    fn backend(&self) -> Arc<Cpu<f32>> {
        Arc::new(Cpu::with_precision(self.session.tracker().clone(), Precision::F32))
    }
    fn bind_batch(&self, program: &Program, batch: Batch) -> Result<Vec<(&'static str, ArrayD<f32>)>, ExecError> {
        self.say("bind".into());
        let Batch::Host(x, y) = batch else {
            panic!("host batches only")
        };
        let mut inputs = vec![("x", x.into_dyn()), ("labels", y.into_dyn())];
        if program.loss_scaled {
            inputs.push((LOSS_SCALE_INPUT, ArrayD::from_elem(vec![], 1.0)));
        }
        Ok(inputs)
    }
    fn parameter(&self, name: &str) -> Option<&Buffer<f32>> {
        chainrule::exec::ParameterAccess::get_param(&self.session, name)
    }
    fn zeros_for_no_rows(&self, program: &Program) -> Result<Vec<Buffer<f32>>, ExecError> {
        self.say("zeros".into());
        let zeros = |shape: &[usize]| -> Result<Buffer<f32>, ExecError> {
            Ok(self.session.allocate(Category::Temporaries, ArrayD::zeros(shape))?)
        };
        let mut out = vec![zeros(&[])?];
        for name in program.params {
            out.push(zeros(self.session.param(name).unwrap().shape())?);
        }
        out.push(zeros(&[])?);
        Ok(out)
    }
    fn scale_in_place(&self, t: &mut Buffer<f32>, factor: f32) -> Result<(), ExecError> {
        self.say(format!("scale {} by {factor}", shape(t)));
        Ok(())
    }
    fn start_sum(&self, _group: &Group, t: &mut Buffer<f32>) -> Result<(), ExecError> {
        self.say(format!("sum {}", shape(t)));
        Ok(())
    }
    fn wait_for_sums(&self, _group: &Group) -> Result<(), ExecError> {
        self.say("wait".into());
        Ok(())
    }
    fn flag_nonfinite(&mut self, t: &Buffer<f32>, flag: GuardFlag) -> Result<(), ExecError> {
        self.say(format!("flag {flag:?} {}", shape(t)));
        Ok(())
    }
    fn loss_scaled(&self) -> bool {
        self.loss_scaled
    }
    fn clips_gradients(&self) -> bool {
        self.clips
    }
    fn clip_gradients(&mut self, grads: &mut [Buffer<f32>]) -> Result<(), ExecError> {
        self.say(format!("clip {} gradients", grads.len()));
        Ok(())
    }
    fn apply_update(&mut self, name: &str, _grad: &mut Buffer<f32>, _lr: f64) -> Result<(), ExecError> {
        self.say(format!("update {name}"));
        Ok(())
    }
    fn keep_buffer(&mut self, name: &str, _value: &Buffer<f32>) -> Result<(), ExecError> {
        self.say(format!("keep {name}"));
        Ok(())
    }
    fn close_step(&mut self, _: Buffer<f32>, _: Buffer<f32>, rows: usize, step: u64) -> Result<(), ExecError> {
        self.say(format!("close {rows} rows, step {step}"));
        Ok(())
    }
}

const GLOBAL_ROWS: usize = 6;

/// The calls one step of `program` makes on `rows` rows, alone or (`rank`) as a rank with
/// that many of [`GLOBAL_ROWS`].
fn calls(
    mlp: &Mlp,
    program: &StepProgram,
    rows: usize,
    rank: bool,
    loss_scaled: bool,
) -> Result<Vec<String>, ExecError> {
    calls_clipping(mlp, program, (rows, rank), loss_scaled, false)
}

/// [`calls`], with the optimizer clipping gradients when `clips`.
fn calls_clipping(
    mlp: &Mlp,
    program: &StepProgram,
    (rows, rank): (usize, bool),
    loss_scaled: bool,
    clips: bool,
) -> Result<Vec<String>, ExecError> {
    let mut model = Recorder {
        session: crate::common::session(mlp),
        loss_scaled,
        clips,
        calls: RefCell::new(Vec::new()),
    };
    let collective = threads::group(1, Duration::from_secs(5)).remove(0);
    let group = Group::new(Arc::new(collective) as Arc<dyn Collective>);
    let share = StepShare {
        rows,
        global_rows: GLOBAL_ROWS,
    };
    let x = Array2::from_shape_fn((rows, 3), |(r, c)| (r + c) as f32 / 7.0);
    let y = Array1::from_shape_fn(rows, |r| (r % 2) as f32);
    let ctx = crate::common::ctx();
    let step = TrainingStep {
        program: &program.program(),
        batch: Batch::Host(x, y),
        ctx: &ctx,
        lr: 0.1,
        step: 4,
        rank: rank.then_some((&group, share)),
    };
    step_protocol::train(&mut model, step)?;
    Ok(model.calls.into_inner())
}

fn program(mlp: &Mlp, inside: bool, loss_scaled: bool) -> StepProgram {
    let options = StepOptions {
        loss_scaled,
        update_in_backward: inside,
        ..StepOptions::default()
    };
    let resident = crate::common::session(mlp).tracker().report();
    StepProgram::training(mlp, 3, CheckpointPolicy::Sqrt, &resident, options).unwrap()
}

fn strings(calls: &[&str]) -> Vec<String> {
    calls.iter().map(|c| c.to_string()).collect()
}

#[test]
fn a_step_after_backward_guards_then_updates_in_the_gpu_steps_order() {
    let mlp = Mlp::new(MlpSpec::new("3-5-4-2", "relu", 0.0).unwrap()).unwrap();
    let p = program(&mlp, false, false);
    let updates: Vec<String> = p.params.iter().map(|n| format!("update {n}")).collect();
    // Alone: the guard sees the loss, then every update in the parameters' order.
    let mut alone = strings(&["bind", "flag NonfiniteLoss []"]);
    alone.extend(updates.clone());
    alone.push("close 3 rows, step 4".into());
    assert_eq!(calls(&mlp, &p, 3, false, false).unwrap(), alone);
    // Under loss scaling, every gradient is checked for overflow first.
    let scaled = program(&mlp, false, true);
    let mut checked = strings(&["bind", "flag NonfiniteLoss []"]);
    for name in &scaled.params {
        let shape = crate::common::session(&mlp).param(name).unwrap().shape().to_vec();
        checked.push(format!("flag Overflow {shape:?}"));
    }
    checked.extend(updates.clone());
    checked.push("close 3 rows, step 4".into());
    assert_eq!(calls(&mlp, &scaled, 3, false, true).unwrap(), checked);
    // As a rank: each gradient's mean started as backward makes it final, then the loss's
    // and the right answers' sums, one wait, and the same guard and updates.
    let gradients = 1..=p.params.len();
    let session = crate::common::session(&mlp);
    let final_order: Vec<String> = output_ready_points(&p.graph, &p.schedule)
        .into_iter()
        .flatten()
        .filter(|k| gradients.contains(k))
        .map(|k| format!("{:?}", session.param(&p.params[k - 1]).unwrap().shape()))
        .collect();
    assert_eq!(final_order.len(), p.params.len(), "every gradient is summed once");
    for (rows, weight) in [(3, "0.5"), (0, "0")] {
        let mut ranked = strings(if rows == 0 { &["zeros"] } else { &["bind"] });
        for g in &final_order {
            ranked.extend([format!("scale {g} by {weight}"), format!("sum {g}")]);
        }
        ranked.extend(strings(&[&format!("scale [] by {weight}"), "sum []", "sum []", "wait"]));
        ranked.push("flag NonfiniteLoss []".into());
        ranked.extend(updates.clone());
        ranked.push("close 6 rows, step 4".into());
        assert_eq!(calls(&mlp, &p, rows, true, false).unwrap(), ranked, "{rows} rows");
    }
}

#[test]
fn a_step_updating_inside_backward_checks_the_loss_at_its_first_update_in_the_gpu_steps_order() {
    let mlp = Mlp::new(MlpSpec::new("3-5-4-2", "relu", 0.0).unwrap()).unwrap();
    let p = program(&mlp, true, false);
    let session = crate::common::session(&mlp);
    let order: Vec<String> = p
        .schedule
        .instrs
        .iter()
        .filter_map(|i| match i {
            chainrule::plan::Instr::Update { param, .. } => match &p.graph.node(*param).op {
                chainrule::ops::Op::Leaf(chainrule::graph::Leaf::Parameter { name }) => Some(name.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(order.len(), p.params.len());
    let mut alone = strings(&["bind", "flag NonfiniteLoss []"]);
    alone.extend(order.iter().map(|n| format!("update {n}")));
    alone.push("close 3 rows, step 4".into());
    assert_eq!(calls(&mlp, &p, 3, false, false).unwrap(), alone);
    // As a rank: the loss's mean (a copy's) before the guard sees it, then each gradient's
    // mean just before its update; the right answers at the end.
    for (rows, weight) in [(3, "0.5"), (0, "0")] {
        let mut ranked = strings(if rows == 0 { &["zeros"] } else { &["bind"] });
        ranked.extend(strings(&[
            &format!("scale [] by {weight}"),
            "sum []",
            "wait",
            "flag NonfiniteLoss []",
        ]));
        for name in &order {
            let g = format!("{:?}", session.param(name).unwrap().shape());
            ranked.extend([
                format!("scale {g} by {weight}"),
                format!("sum {g}"),
                "wait".into(),
                format!("update {name}"),
            ]);
        }
        ranked.extend(strings(&["sum []", "wait", "close 6 rows, step 4"]));
        assert_eq!(calls(&mlp, &p, rows, true, false).unwrap(), ranked, "{rows} rows");
    }
    // Under loss scaling it is refused before anything runs.
    let err = calls(&mlp, &program(&mlp, true, true), 3, false, true).unwrap_err();
    assert!(err.to_string().contains("loss scaling"), "{err}");
}

#[test]
fn a_batch_norm_step_keeps_its_running_statistics_once_after_its_updates_and_a_rank_without_rows_keeps_none() {
    let spec = MlpSpec::new("3-4-4-2", "relu", 0.0).unwrap();
    let blocks = chainrule::nn::BlockSpec {
        kind: chainrule::nn::BlockKind::Residual,
        norm: chainrule::nn::NormChoice::Batch,
        expansion: 2,
    };
    let mlp = Mlp::new(spec.with_blocks(Some(blocks)).unwrap()).unwrap();
    let buffers = mlp.buffer_names();
    assert_eq!(buffers.len(), 3 * 2, "two blocks' norms and the last norm");
    for inside in [false, true] {
        let p = program(&mlp, inside, false);
        assert_eq!(p.buffers, buffers);
        let keeps: Vec<String> = buffers.iter().map(|n| format!("keep {n}")).collect();
        let alone = calls(&mlp, &p, 3, false, false).unwrap();
        let close = alone.len() - 1;
        assert_eq!(
            alone[close - keeps.len()..close],
            keeps[..],
            "inside backward: {inside}"
        );
        assert!(alone[..close - keeps.len()].iter().all(|c| !c.starts_with("keep")));
        // Each next value is checked as soon as forward makes it, before any update.
        let checks = alone.iter().filter(|c| *c == "flag NonfiniteLoss [4]").count();
        assert_eq!(checks, buffers.len(), "{alone:?}");
        let last_check = alone.iter().rposition(|c| c == "flag NonfiniteLoss [4]").unwrap();
        let first_update = alone.iter().position(|c| c.starts_with("update")).unwrap();
        assert!(last_check < first_update, "{alone:?}");
        let none = calls(&mlp, &p, 0, true, false).unwrap();
        assert!(none.iter().all(|c| !c.starts_with("keep")), "{none:?}");
    }
}

#[test]
fn clipping_comes_after_the_sums_and_the_guard_and_before_the_first_update() {
    let mlp = Mlp::new(MlpSpec::new("3-5-4-2", "relu", 0.0).unwrap()).unwrap();
    let p = program(&mlp, false, false);
    let n = p.params.len();
    for (rows, rank) in [(3, false), (3, true), (0, true)] {
        let calls = calls_clipping(&mlp, &p, (rows, rank), false, true).unwrap();
        let at = |c: &str| {
            calls
                .iter()
                .position(|x| x.starts_with(c))
                .unwrap_or_else(|| panic!("no {c} in {calls:?}"))
        };
        let clip = at(&format!("clip {n} gradients"));
        assert!(at("flag NonfiniteLoss") < clip && clip < at("update "), "{calls:?}");
        if rank {
            assert!(calls.iter().rposition(|c| c == "wait").unwrap() < clip, "{calls:?}");
        }
    }
    // Updates inside backward cannot know the norm: refused before anything runs.
    let err = calls_clipping(&mlp, &program(&mlp, true, false), (3, false), false, true).unwrap_err();
    assert!(err.to_string().contains("every gradient"), "{err}");
}
