//! What recomputing costs, in time: each op's FLOPs at the device's rate for its kind
//! (matrix products run far faster than elementwise work) plus the bytes it moves at the
//! device's memory rate, a roofline sum. The checkpoint planner minimizes this, not FLOPs:
//! on a GPU a ReLU costs little in FLOPs and much in bytes.

use super::schedule::Schedule;
use crate::graph::{Graph, NodeId};
use crate::ops::{self, Op};

/// What one run of node `id` costs, by the ops' cost model at the node's own dtype.
pub fn node_cost(graph: &Graph, id: NodeId) -> ops::Cost {
    let node = graph.node(id);
    let shapes: Vec<_> = node.inputs.iter().map(|&x| graph.shape(x)).collect();
    ops::cost(&node.op, &shapes, &node.shape, node.dtype.size_bytes())
}

/// A device's rates, in operations or bytes a second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// FLOP/s of matrix products.
    pub product: f64,
    /// FLOP/s of everything else.
    pub other: f64,
    /// Bytes/s of memory traffic.
    pub memory: f64,
}

impl Rates {
    /// Defaults for a CPU of a few cores (what `chainrule bench` measures on 2-16 threads:
    /// products at ~50 GFLOP/s, elementwise work bound by ~10 GB/s).
    pub const CPU: Rates = Rates {
        product: 50e9,
        other: 10e9,
        memory: 10e9,
    };
    /// Defaults for an H100-class GPU (bf16/TF32 products ~400 TFLOP/s, HBM ~3 TB/s).
    pub const GPU: Rates = Rates {
        product: 400e12,
        other: 30e12,
        memory: 3e12,
    };

    /// Seconds node `id` takes to run once.
    pub fn seconds(&self, graph: &Graph, id: NodeId) -> f64 {
        let cost = node_cost(graph, id);
        let rate = match graph.node(id).op {
            Op::MatMul { .. } => self.product,
            _ => self.other,
        };
        cost.flops as f64 / rate + cost.bytes_moved as f64 / self.memory
    }
}

impl Rates {
    /// Seconds of one run of `schedule`, and of its recomputations alone.
    pub fn schedule_seconds(&self, graph: &Graph, schedule: &Schedule) -> (f64, f64) {
        // Each node's time once: a nested plan runs the same nodes many times.
        let mut each: Vec<Option<f64>> = vec![None; graph.len()];
        let mut time = |id: NodeId| *each[id.0].get_or_insert_with(|| self.seconds(graph, id));
        let (mut total, mut recompute) = (0.0, 0.0);
        for instr in &schedule.instrs {
            let s: f64 = instr.runs().map(&mut time).sum();
            total += s;
            if instr.is_recompute() {
                recompute += s;
            }
        }
        (total, recompute)
    }
}

/// What one run of a schedule does besides matrix products' FLOPs: the numbers a measured
/// step time calibrates rates from ([`Rates::calibrated`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    pub product_flops: u64,
    pub other_flops: u64,
    pub other_bytes: u64,
}

impl Work {
    /// The work of one run of `schedule`.
    pub fn of(graph: &Graph, schedule: &Schedule) -> Work {
        // Each node's work once: a nested plan runs the same nodes many times.
        let mut each: Vec<Option<Work>> = vec![None; graph.len()];
        let mut w = Work::default();
        for id in schedule.instrs.iter().flat_map(|i| i.runs()) {
            let one = *each[id.0].get_or_insert_with(|| Work::of_node(graph, id));
            w.product_flops += one.product_flops;
            w.other_flops += one.other_flops;
            w.other_bytes += one.other_bytes;
        }
        w
    }

    fn of_node(graph: &Graph, id: NodeId) -> Work {
        let cost = node_cost(graph, id);
        match graph.node(id).op {
            Op::MatMul { .. } => Work {
                product_flops: cost.flops,
                ..Work::default()
            },
            _ => Work {
                product_flops: 0,
                other_flops: cost.flops,
                other_bytes: cost.bytes_moved,
            },
        }
    }
}

impl Rates {
    /// Rates measured on this machine (`chainrule bench`): products at `product` FLOP/s (the
    /// bare products' own rate), and the rest of a step of `work` that took `step_seconds`
    /// spread over elementwise work and memory in the proportions of these defaults.
    pub fn calibrated(self, product: f64, work: Work, step_seconds: f64) -> Rates {
        let products = work.product_flops as f64 / product;
        let rest = (step_seconds - products).max(step_seconds * 0.01);
        let modeled = work.other_flops as f64 / self.other + work.other_bytes as f64 / self.memory;
        let faster = if modeled > 0.0 { modeled / rest } else { 1.0 };
        Rates {
            product,
            other: self.other * faster,
            memory: self.memory * faster,
        }
    }
}

impl std::str::FromStr for Rates {
    type Err = String;
    /// `cpu`, `gpu`, or three rates `PRODUCT,OTHER,MEMORY` (FLOP/s, FLOP/s, bytes/s), e.g. the
    /// product rate `chainrule bench` measures: `48e9,10e9,12e9`.
    fn from_str(spec: &str) -> Result<Rates, String> {
        match spec {
            "cpu" => return Ok(Rates::CPU),
            "gpu" => return Ok(Rates::GPU),
            _ => {}
        }
        let numbers: Vec<f64> = spec.split(',').map(|x| x.trim().parse().unwrap_or(f64::NAN)).collect();
        match numbers[..] {
            [product, other, memory] if numbers.iter().all(|x| x.is_finite() && *x >= 1.0) => Ok(Rates {
                product,
                other,
                memory,
            }),
            _ => Err(format!(
                "'{spec}': expected auto, cpu, gpu or three rates PRODUCT,OTHER,MEMORY (FLOP/s, FLOP/s, bytes/s, each at least 1), e.g. 48e9,10e9,12e9"
            )),
        }
    }
}

impl Default for Rates {
    fn default() -> Self {
        Rates::CPU
    }
}
