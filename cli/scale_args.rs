//! `chainrule scale`'s flags, each with its default.

use crate::model_flags::{ModelFlags, StepFlags};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Vary {
    Batch,
    Depth,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Checkpoint policies, comma-separated: none, cheap, sqrt, every:K, revolve:S, budget (the memory limit as budget: the least recompute time that fits, nested plans included); --checkpoint names it too
    #[arg(
        long,
        default_value = "none,cheap,sqrt,budget",
        value_delimiter = ',',
        alias = "checkpoint"
    )]
    pub policies: Vec<String>,
    /// For budget: its plans recompute at most this factor (a step's FLOPs over those without recomputation); a budget can always fit a larger batch by recomputing more, quadratically at the edge
    #[arg(long, default_value_t = chainrule::scale::DEFAULT_MAX_RECOMPUTE, value_name = "FACTOR")]
    pub max_recompute: f64,
    /// Memory limit such as 1GiB [default on a GPU: its free memory; required on the CPU, where the allocator enforces it]
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// What to maximise: the batch size, or the depth (hidden layers of --width, or blocks with --block) at --batch-size
    #[arg(long, value_enum, default_value_t = Vary::Batch)]
    pub vary: Vary,
    /// Timed steps per throughput point (median); 0: one step, which confirms a maximum and gives a rough rate
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// Smallest batch of the throughput sweep (powers of two from here up to the maximum)
    #[arg(long, default_value_t = 64)]
    pub sweep_from: usize,
    /// Only predict the maxima: no confirming step, no throughput sweep
    #[arg(long)]
    pub predict_only: bool,
    /// Device: auto, cpu, or cuda[:N]
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// The GPUs of a data-parallel job, as train --devices: numbers (0,1,2,3) or all. The search and its confirming steps run on the first; the job has one rank per GPU, each holding the model and its share of the global batch, so the largest global batch is that many times the per-rank maximum, at the per-rank peak shown (NCCL's own buffers, tens of MiB, not counted)
    #[arg(long, value_name = "LIST|all", conflicts_with = "ranks")]
    pub devices: Option<chainrule::dist::DeviceList>,
    /// Ranks of a data-parallel job on GPUs this machine does not have (a cluster's): as --devices, by count [default: one per GPU of --devices, else 1]
    #[arg(long, value_name = "N")]
    pub ranks: Option<usize>,
    /// Folder for scale.csv, scale.json and, with --vary batch, throughput.svg and memory.svg (predicted-peak.svg with --predict-only)
    #[arg(long, default_value = "scale-out", value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub step: StepFlags,
}
