//! `chainrule scale`'s flags, each with its default.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Vary {
    Batch,
    Depth,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Layer widths of the MLP (input to classes); or give --depth and --width
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["depth"])]
    pub layers: Option<String>,
    /// Number of layers of a --width-wide net (with --vary depth: ignored, it is the answer)
    #[arg(long, default_value_t = 256)]
    pub depth: usize,
    /// Width of every layer of a --depth net (10 classes out)
    #[arg(long, default_value_t = 256)]
    pub width: usize,
    /// Checkpoint policies, comma-separated: none, cheap, sqrt, every:K, revolve:S, budget (the memory limit as budget: the least recompute time that fits, nested plans included)
    #[arg(long, default_value = "none,cheap,sqrt,budget", value_delimiter = ',')]
    pub policies: Vec<String>,
    /// For budget: its plans recompute at most this factor (a step's FLOPs over those without recomputation); a budget can always fit a larger batch by recomputing more, quadratically at the edge
    #[arg(long, default_value_t = chainrule::scale::DEFAULT_MAX_RECOMPUTE, value_name = "FACTOR")]
    pub max_recompute: f64,
    /// Memory limit such as 1GiB [default on a GPU: its free memory; required on the CPU, where the allocator enforces it]
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// What to maximise: the batch size, or the depth at --batch-size
    #[arg(long, value_enum, default_value_t = Vary::Batch)]
    pub vary: Vary,
    /// Batch size for --vary depth
    #[arg(long, default_value_t = 256, value_name = "B")]
    pub batch_size: usize,
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
    /// Compute dtype: f32, bf16 or f16 (as train's: on a GPU, 16-bit activations count 2 bytes a value)
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Each parameter's update inside backward, its gradient freed at once (as train --update-in-backward)
    #[arg(long)]
    pub update_in_backward: bool,
    /// Ranks of a data-parallel job (train --devices): each holds the model and its share of the global batch, so the largest global batch is this many times the per-rank maximum below, at the per-rank peak shown (NCCL's own buffers, tens of MiB, not counted)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub devices: usize,
    /// Folder for scale.csv, scale.json, throughput.svg and memory.svg (predicted-peak.svg with --predict-only)
    #[arg(long, default_value = "scale-out", value_name = "DIR")]
    pub out: PathBuf,
}
