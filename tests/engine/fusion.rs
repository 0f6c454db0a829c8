//! Linear-layer fusion (engine/fusion.rs): which layers fuse, and that a fused schedule
//! computes exactly what the unfused one does (bit for bit on the CPU, every checkpoint
//! policy, dropout included) while its predicted peak still equals the measured one and
//! never exceeds the unfused peak.

use chainrule::memory::MemoryReport;
use chainrule::nn::{Mlp, MlpSpec};
use chainrule::plan::CheckpointPolicy;
use chainrule::plan::{Instr, Schedule};
use chainrule::train::StepProgram;

/// (fused with ReLU, fused bias only, recomputed) Linear instructions in a schedule.
fn linears(s: &Schedule) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for i in &s.instrs {
        if let Instr::Linear { act, recompute, .. } = i {
            if act.is_some() {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
            counts.2 += usize::from(*recompute);
        }
    }
    counts
}

#[test]
fn relu_layers_fuse_bias_and_activation_and_gelu_layers_fuse_the_bias_only() {
    let mlp = Mlp::new(MlpSpec::new("12-20-18-16-5", "relu", 0.2).unwrap()).unwrap();
    let p = StepProgram::checkpointed(&mlp, 8, CheckpointPolicy::None, &MemoryReport::default()).unwrap();
    // Three hidden layers with ReLU; the last layer's logits feed the loss and its gradient.
    assert_eq!(linears(&p.schedule), (3, 1, 0));
    let mlp = Mlp::new(MlpSpec::new("12-20-18-16-5", "gelu", 0.0).unwrap()).unwrap();
    let p = StepProgram::checkpointed(&mlp, 8, CheckpointPolicy::None, &MemoryReport::default()).unwrap();
    assert_eq!(linears(&p.schedule), (0, 4, 0), "GELU's backward reads its input");
    // Forward only: nothing reads a pre-activation but its ReLU.
    let mlp = Mlp::new(MlpSpec::new("12-20-18-16-5", "relu", 0.2).unwrap()).unwrap();
    let eval = StepProgram::evaluation(&mlp, 8).unwrap();
    assert_eq!(linears(&eval.schedule), (3, 1, 0));
}

#[test]
fn fused_schedules_match_unfused_ones_bit_for_bit_under_every_policy() {
    for activation in ["relu", "gelu"] {
        let spec = MlpSpec::new("13-17-19-21-17-19-21-17-5", activation, 0.3).unwrap();
        let mlp = Mlp::new(spec).unwrap();
        for policy in [
            CheckpointPolicy::None,
            CheckpointPolicy::Cheap,
            CheckpointPolicy::Sqrt,
            CheckpointPolicy::Every(2),
        ] {
            let s = crate::common::session(&mlp);
            let resident = s.tracker().report();
            let p = StepProgram::checkpointed(&mlp, 11, policy, &resident).unwrap();
            let plan = p.plan.as_ref().unwrap();
            let mut outputs = p.schedule.outputs.clone();
            let grads = outputs.split_off(1);
            let unfused = Schedule::build(&p.graph, &p.schedule.outputs, &grads, &plan.keep);
            assert!(!unfused.instrs.iter().any(|i| matches!(i, Instr::Linear { .. })));
            let (fused_run, plain_run) = (
                crate::common::run_schedule(&mlp, &p, &p.schedule, &s, 11),
                crate::common::run_schedule(&mlp, &p, &unfused, &s, 11),
            );
            let label = format!("{activation} {policy}");
            assert_eq!(fused_run.outputs, plain_run.outputs, "{label}: outputs differ");
            assert_eq!(fused_run.measured.peak_total, fused_run.predicted.peak_total, "{label}");
            assert_eq!(plain_run.measured.peak_total, plain_run.predicted.peak_total, "{label}");
            assert!(
                fused_run.measured.peak_total <= plain_run.measured.peak_total,
                "{label}: fusion raised the peak"
            );
            let (with_act, bias_only, recomputed) = linears(&p.schedule);
            let relu = activation == "relu";
            match policy {
                CheckpointPolicy::None => {
                    let expected = if relu { (7, 1, 0) } else { (0, 8, 0) };
                    assert_eq!((with_act, bias_only, recomputed), expected, "{label}");
                }
                // `cheap` keeps each product to recompute the bias add and activation from
                // it: a product read twice cannot fuse.
                CheckpointPolicy::Cheap => assert_eq!((with_act, bias_only, recomputed), (0, 0, 0), "{label}"),
                _ => {
                    assert!(recomputed > 0, "{label}: recomputed layers fuse too");
                    assert!(with_act + bias_only > 8, "{label}");
                    assert_eq!(with_act > 0, relu, "{label}");
                }
            }
        }
    }
}
