//! How large a batch (or how deep a net) fits a memory limit under a checkpoint policy,
//! answered from the planner's prediction instead of by trial and error: with a fixed plan
//! every tensor is affine in the batch size, so two predictions give the line.

use super::program::ProgramError;
use super::{StepOptions, StepProgram};
use crate::memory::{Category, MemoryReport};
use crate::nn::{Mlp, MlpSpec, SpecError};
use crate::optim::OptimizerConfig;
use crate::plan::fp8::FP8_DIMENSION_MULTIPLE;
use crate::plan::{CheckpointPolicy, HalfLayout, Plan, PlanError};

/// Bytes live before a step: parameters and the optimizer's state in f32 (and buffers,
/// counted as parameters) and, on a device that holds 16-bit values as `layout` says (a
/// GPU's low-precision step), a 16-bit twin of each weight matrix.
pub fn resident_bytes_for(spec: &MlpSpec, optimizer: &OptimizerConfig, layout: HalfLayout) -> MemoryReport {
    let params = spec.parameter_count() as u64 * 4;
    let mut r = MemoryReport::default();
    r.add(Category::Parameters, params + spec.buffer_count() as u64 * 4);
    r.add(Category::OptimizerState, optimizer.state_names().len() as u64 * params);
    if layout.packed() {
        let twins = spec.linears().iter().map(|&(i, o)| layout.bytes(i * o)).sum();
        r.add(Category::Parameters, twins);
    }
    r
}

/// The predicted peak of one training step run as `options` say (the device's 16-bit
/// layout, updates inside backward), or `None` when the policy cannot plan it (a budget
/// nothing fits).
pub fn predicted_peak(
    mlp: &Mlp,
    batch: usize,
    policy: CheckpointPolicy,
    resident: &MemoryReport,
    options: StepOptions,
) -> Option<u64> {
    plan_at(mlp, batch, policy, resident, options).map(|p| p.predicted.peak_total)
}

/// The plan of one training step run as `options` say, or `None` when the policy cannot
/// plan it (a budget nothing fits).
pub fn plan_at(
    mlp: &Mlp,
    batch: usize,
    policy: CheckpointPolicy,
    resident: &MemoryReport,
    options: StepOptions,
) -> Option<Plan> {
    StepProgram::training(mlp, batch, policy, resident, options).ok()?.plan
}

/// Why `policy` cannot plan a step at `batch` when the reason is not memory (a plan over the
/// op cap, [`crate::plan::budget::MAX_NODE_RUNS`]), so a search that stops there says so.
pub fn plan_refusal(
    mlp: &Mlp,
    batch: usize,
    policy: CheckpointPolicy,
    resident: &MemoryReport,
    options: StepOptions,
) -> Option<String> {
    match StepProgram::training(mlp, batch, policy, resident, options) {
        Err(ProgramError::Plan(PlanError::OverBudget { .. })) | Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// How much a budget's plan may recompute by default when `scale` (or out-of-memory advice)
/// looks for the largest batch: a step's FLOPs at most this many times those without
/// recomputation. Past it a budget would fit ever larger batches by recomputing ever more
/// (at the very edge, quadratically), which no one wants to train at.
pub const DEFAULT_MAX_RECOMPUTE: f64 = 4.0;

/// Whether `policy`'s plan at `batch` fits `limit` (a budget's, recomputing at most
/// `max_recompute`; a fixed policy recomputes what it does at any batch).
pub fn fits_at(
    mlp: &Mlp,
    batch: usize,
    policy: CheckpointPolicy,
    limit: u64,
    resident: &MemoryReport,
    options: StepOptions,
    max_recompute: f64,
) -> bool {
    let cap = match policy {
        CheckpointPolicy::Budget(_) => max_recompute,
        _ => f64::INFINITY,
    };
    plan_at(mlp, batch, policy, resident, options)
        .is_some_and(|p| p.predicted.peak_total <= limit && p.recompute_factor() <= cap)
}

/// The largest batch whose predicted peak fits `limit` (see [`fits_at`]), or `None` if not
/// even the smallest batch fits (one example; two with BatchNorm).
///
/// In an FP8 step the peak is not monotone in the batch: every product of an MLP step has
/// the batch as a side, so a batch that is a multiple of 16 runs its products on FP8 copies
/// (plan/fp8.rs) that a batch of one row more does not make. Within each kind the peak grows
/// with the batch, so each kind is searched, and the larger answer taken.
pub fn max_batch(
    mlp: &Mlp,
    policy: CheckpointPolicy,
    limit: u64,
    resident: &MemoryReport,
    options: StepOptions,
    max_recompute: f64,
) -> Option<usize> {
    let fits = |b: usize| fits_at(mlp, b, policy, limit, resident, options, max_recompute);
    let peak = |b: usize| predicted_peak(mlp, b, policy, resident, options);
    let least = mlp.smallest_training_batch();
    let search = |batch: &dyn Fn(usize) -> usize, first| largest_batch_of(batch, first, limit, &fits, &peak);
    if !options.layout.fp8() {
        return search(&|n| n, least);
    }
    let m = FP8_DIMENSION_MULTIPLE;
    // The n-th batch that is not a multiple of m (n from 1), and the n-th that is.
    let others = search(&|n| n + (n - 1) / (m - 1), least);
    let multiples = search(&|n| n * m, least.div_ceil(m));
    others.max(multiples)
}

/// The largest `batch(n)` that fits `limit`, n from `first`, for `batch` increasing and
/// fitting monotone along it; `None` if `batch(first)` does not fit. A fixed plan is affine
/// in the batch: the line through the two first batches lands on the answer. A budget may
/// change plan with the batch, so the guess is then refined by bisection.
fn largest_batch_of(
    batch: &dyn Fn(usize) -> usize,
    first: usize,
    limit: u64,
    fits: &dyn Fn(usize) -> bool,
    peak: &dyn Fn(usize) -> Option<u64>,
) -> Option<usize> {
    let fits_n = |n: usize| fits(batch(n));
    if !fits_n(first) {
        return None;
    }
    let (p1, p2) = (peak(batch(first))?, peak(batch(first + 1))?);
    let slope = p2.saturating_sub(p1).max(1);
    let guess = (first as u64 + limit.saturating_sub(p1) / slope).min(1 << 36) as usize;
    let start = if fits_n(guess) { guess } else { first };
    Some(batch(largest_fitting(start, &fits_n)))
}

/// The deepest net `at_depth` makes (see [`MlpSpec::with_depth`]) whose step at `batch`
/// fits `limit`.
#[allow(clippy::too_many_arguments)]
pub fn max_depth(
    at_depth: &dyn Fn(usize) -> Result<MlpSpec, SpecError>,
    batch: usize,
    policy: CheckpointPolicy,
    limit: u64,
    optimizer: &OptimizerConfig,
    options: StepOptions,
    max_recompute: f64,
) -> Option<usize> {
    let fits = |depth: usize| {
        let Ok(spec) = at_depth(depth) else {
            return false;
        };
        let resident = resident_bytes_for(&spec, optimizer, options.layout);
        Mlp::new(spec)
            .ok()
            .is_some_and(|mlp| fits_at(&mlp, batch, policy, limit, &resident, options, max_recompute))
    };
    if !fits(1) {
        return None;
    }
    Some(largest_fitting(1, &fits))
}

/// The largest n >= `start` with `fits(n)`, given `fits(start)` and that fitting is
/// monotone: galloping from `start` finds an upper bound (one probe when `start` is already
/// the answer), bisection the edge.
fn largest_fitting(start: usize, fits: &dyn Fn(usize) -> bool) -> usize {
    let (mut lo, mut step) = (start, 1usize);
    while fits(lo.saturating_add(step)) {
        lo += step;
        step = step.saturating_mul(2);
    }
    let mut hi = lo.saturating_add(step);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}
