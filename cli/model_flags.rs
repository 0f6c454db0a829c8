//! The model and training-step flags every tool shares (`train`, `bench`, `plan`, `remat`,
//! `scale`): the same names, meanings and defaults, `train`'s, so a peak `plan` predicts is
//! the peak `train` measures for the same flags, and a batch `scale` finds carries over.

use anyhow::{bail, Context};
use chainrule::nn::{BlockKind, BlockSpec, MlpSpec, NormChoice, SpecError};
use chainrule::optim::{OptimizerConfig, OptimizerKind};
use chainrule::plan::CheckpointPolicy;
use chainrule::train::{setup, TrainConfig};
use clap::Args;

/// The shape of the data the tools without data (`bench`, `plan`, `remat`, `scale`) stand in
/// for: the built-in MNIST subset's, which is what `train` with no data flags trains on.
pub const SYNTHETIC_FEATURES: usize = 784;
pub const SYNTHETIC_CLASSES: usize = 10;

/// The deepest `--depth` (and `scale --vary depth`'s search): planning a budget over 10,000
/// layers takes ~7 s and ~2 GB here, and grows faster than the depth (20,000: 22 s, 5 GB).
pub const MAX_DEPTH: usize = 10_000;
/// The deepest block net: a gated block traces about four plain layers' nodes, and planning a
/// budget grows with the square of the nodes (4,000 gated blocks: 19 s and 3.1 GB here).
pub const MAX_BLOCKS: usize = 2_500;

/// What the model is.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Model (the same in train, bench, plan, remat and scale)")]
pub struct ModelFlags {
    /// Layer widths, input to classes, e.g. 784-512-256-10 [default: FEATURES-512-256-CLASSES from the data: 784-512-256-10 for MNIST, and for bench, plan, remat and scale, which measure MNIST-shaped synthetic data]
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["depth", "width"])]
    pub layers: Option<String>,
    /// Hidden layers, each --width wide, between the data's features and its classes: --depth 2 --width 512 is 784-512-512-10 on MNIST; with --block, blocks on a residual stream --width wide. Every tool counts depth this way; remat takes a list (8,16,32) [default: the --layers default]
    #[arg(long, value_name = "D", value_delimiter = ',', alias = "depths")]
    pub depth: Vec<usize>,
    /// Width of each hidden layer of a --depth net (with --block, the residual stream's)
    #[arg(long, value_name = "W")]
    pub width: Option<usize>,
    /// Activation between layers (in a block, after W1): relu, leaky_relu, gelu (tanh form), silu, tanh, sigmoid (He init for the ReLU family, gelu and silu, Xavier for tanh/sigmoid)
    #[arg(long, default_value = "relu")]
    pub activation: String,
    /// Dropout probability after each hidden activation (in a block: after the activation, or the gate's product, and on the branch before the residual sum)
    #[arg(long, default_value_t = 0.1, value_name = "P")]
    pub dropout: f64,
    /// What each hidden width is: plain (Linear, activation, dropout), residual (the pre-norm block x + W2(act(W1(norm(x))))), gated (x + W2(act(W1 n) * W3 n), n = norm(x): SwiGLU with --activation silu, GEGLU with gelu). Block nets put an input projection before the blocks and a norm and an output projection after them; --depth counts blocks and --width is the residual stream's width
    #[arg(long, default_value = "plain", value_name = "KIND")]
    pub block: String,
    /// The norm at the head of each block and before the output projection: layer (LayerNorm, eps 1e-5), rms (RMSNorm, eps 1.19e-7, PyTorch's default for f32), batch (BatchNorm1d, eps 1e-5: the batch's statistics in training, running statistics with momentum 0.1 in evaluation; a training batch needs 2 rows or more), none [default: layer, for --block residual and gated]
    #[arg(long, value_name = "NORM")]
    pub norm: Option<String>,
    /// A block's hidden width over --width (W1 and W3 are WIDTH x E*WIDTH) [default: 4, for --block residual and gated]
    #[arg(long, value_name = "E")]
    pub expansion: Option<usize>,
}

impl ModelFlags {
    /// The depths asked for: none (use `--layers` or the default), or one per entry.
    pub fn depths(&self) -> anyhow::Result<&[usize]> {
        if let Some(&zero) = self.depth.iter().find(|&&d| d == 0) {
            bail!("--depth {zero}: must be at least 1 (hidden layers)");
        }
        let (most, counted) = self.max_depth();
        if let Some(&deep) = self.depth.iter().find(|&&d| d > most) {
            bail!("--depth {deep}: at most {most} {counted}");
        }
        match (self.depth.is_empty(), self.width) {
            (true, Some(w)) => bail!("--width {w} needs --depth (how many hidden layers of that width)"),
            (false, None) => bail!("--depth needs --width (how wide each hidden layer is)"),
            (_, Some(0)) => bail!("--width must be at least 1"),
            _ => Ok(&self.depth),
        }
    }

    /// The deepest net `--depth` (and `scale --vary depth`) goes to, and what it counts.
    pub fn max_depth(&self) -> (usize, &'static str) {
        match self.block.as_str() {
            "plain" => (MAX_DEPTH, "hidden layers"),
            _ => (MAX_BLOCKS, "blocks"),
        }
    }

    /// The block of `--block`, `--norm` and `--expansion` (none: the plain chain).
    pub fn blocks(&self) -> anyhow::Result<Option<BlockSpec>> {
        let kind = match self.block.as_str() {
            "plain" => None,
            "residual" => Some(BlockKind::Residual),
            "gated" => Some(BlockKind::Gated),
            other => bail!("--block '{other}': expected plain, residual or gated"),
        };
        let norm = match self.norm.as_deref().map(|n| (n, NormChoice::parse(n))) {
            Some((n, None)) => bail!("--norm '{n}': expected layer, rms, batch or none"),
            Some((_, Some(norm))) => norm,
            None => NormChoice::Layer,
        };
        let Some(kind) = kind else {
            if let Some(n) = &self.norm {
                bail!("--norm {n} is a block's: give --block residual or gated (a plain chain has no norm)");
            }
            if let Some(e) = self.expansion {
                bail!("--expansion {e} is a block's: give --block residual or gated");
            }
            return Ok(None);
        };
        let expansion = match self.expansion {
            Some(0) => bail!("--expansion must be at least 1"),
            Some(e) => e,
            None => 4,
        };
        Ok(Some(BlockSpec { kind, norm, expansion }))
    }

    /// The one depth of a tool that measures one model (`--depth 8,16` is remat's).
    pub fn single_depth(&self) -> anyhow::Result<Option<usize>> {
        match self.depths()? {
            [] => Ok(None),
            [d] => Ok(Some(*d)),
            more => bail!(
                "--depth {}: this command measures one model; remat measures a list of depths",
                more.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
            ),
        }
    }

    /// The model for data of `features` inputs and `classes` classes: `--layers`, or
    /// `--depth`/`--width`, or `FEATURES-512-256-CLASSES`.
    pub fn spec(&self, features: usize, classes: usize) -> anyhow::Result<MlpSpec> {
        let blocks = self.blocks()?;
        let plain = match (self.single_depth()?, &self.layers) {
            (Some(depth), _) => self.spec_at_depth(depth, features, classes),
            (None, Some(layers)) => Ok(MlpSpec::new(layers, &self.activation, self.dropout)?),
            (None, None) if blocks.is_some() => bail!(
                "--block {}: give --depth D --width W (or --layers with equal hidden widths): blocks share one residual stream, and the default layers ({}) have unequal widths",
                self.block,
                setup::default_layers(features, classes)
            ),
            (None, None) => Ok(MlpSpec::new(
                &setup::default_layers(features, classes),
                &self.activation,
                self.dropout,
            )?),
        }?;
        Ok(plain.with_blocks(blocks)?)
    }

    /// `depth` hidden layers of `--width` (which [`Self::depths`] checked is given).
    pub fn spec_at_depth(&self, depth: usize, features: usize, classes: usize) -> anyhow::Result<MlpSpec> {
        let width = self
            .width
            .context("--depth needs --width (how wide each hidden layer is)")?;
        let blocks = self.blocks()?;
        let spec = MlpSpec::with_depth(features, (depth, width), classes, &self.activation, self.dropout)
            .and_then(|spec| spec.with_blocks(blocks));
        spec.map_err(|e| match e {
            // The widths were not typed: name the flags that were.
            SpecError::Layers { why, .. } => anyhow::anyhow!("--depth {depth} --width {width}: {why}"),
            other => other.into(),
        })
    }

    /// The model of the tools without data: MNIST-shaped synthetic examples.
    pub fn synthetic_spec(&self) -> anyhow::Result<MlpSpec> {
        self.spec(SYNTHETIC_FEATURES, SYNTHETIC_CLASSES)
    }
}

/// How a step trains: the optimizer and its settings, the batch, the arithmetic, and what it
/// keeps for backward.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Training step (the same in train, bench, plan, remat and scale)")]
pub struct StepFlags {
    /// Optimizer: sgd, adam, adamw
    #[arg(long, default_value = "adamw")]
    pub optimizer: String,
    /// Learning rate [default: 0.001 for adam/adamw, 0.05 for sgd]
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    /// Weight decay (decoupled for adamw, L2 for sgd/adam)
    #[arg(long, default_value_t = 0.0001, value_name = "WD")]
    pub weight_decay: f64,
    /// Momentum for sgd (0: plain SGD, which keeps no optimizer state)
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Nesterov momentum for sgd
    #[arg(long)]
    pub nesterov: bool,
    /// Examples per step (in train, the last batch of an epoch may be smaller)
    #[arg(long, default_value_t = 128, value_name = "B")]
    pub batch_size: usize,
    /// Compute dtype: f32, bf16, f16 or fp8 (activations stored in 16 bits where every reader takes them, products on 16-bit operands with f32 accumulation; the CPU rounds the same values as a reference; f32 master weights and optimizer state; f16 trains with dynamic loss scaling; fp8 is bf16 with each product whose sides are multiples of 16 on FP8 copies of its operands (e4m3 from the forward pass, e5m2 for gradients), each scaled by a power of two from its current absolute maximum; on a GPU it needs FP8 tensor cores, compute capability 8.9+) [default: f32; with train --resume, the saved run's]
    #[arg(long)]
    pub dtype: Option<String>,
    /// Apply each parameter's update inside backward, as soon as its gradient is complete, and free the gradient: the same result bit for bit, a lower peak when weight gradients set it (not with --dtype f16's loss scaling, nor with --clip-grad-norm, which needs every gradient first)
    #[arg(long)]
    pub update_in_backward: bool,
    /// Clip the gradients to this global L2 norm before each update, as torch.nn.utils.clip_grad_norm_ does: every gradient is multiplied by min(1, MAX / (norm + 1e-6)), the norm taken over all of them (of the true gradients under f16's loss scaling; of the summed gradients in a data-parallel job). Needs every gradient before the first update, so not with --update-in-backward [default: no clipping]
    #[arg(long, value_name = "MAX")]
    pub clip_grad_norm: Option<f64>,
    /// The flags typed on the command line (by field name), as opposed to defaults.
    #[arg(skip)]
    pub given: Vec<String>,
}

impl StepFlags {
    /// Whether `field`'s flag was typed on the command line (not left at its default).
    pub fn typed(&self, field: &str) -> bool {
        self.given.iter().any(|g| g == field)
    }

    pub fn optimizer_kind(&self) -> anyhow::Result<OptimizerKind> {
        OptimizerKind::parse(&self.optimizer)
            .with_context(|| format!("--optimizer '{}': expected sgd, adam or adamw", self.optimizer))
    }

    /// The optimizer with its settings, checked; `--momentum`/`--nesterov` typed for an
    /// optimizer without them would be silently ignored, so they are refused.
    pub fn optimizer(&self) -> anyhow::Result<OptimizerConfig> {
        let kind = self.optimizer_kind()?;
        for (field, flag) in [("momentum", "--momentum"), ("nesterov", "--nesterov")] {
            if self.typed(field) && kind != OptimizerKind::Sgd {
                bail!(
                    "{flag} is SGD's: --optimizer {} has none (give --optimizer sgd)",
                    kind.name()
                );
            }
        }
        Ok(setup::optimizer(
            kind,
            self.weight_decay,
            (self.momentum, self.nesterov),
            self.clip_grad_norm,
        )?)
    }

    /// `--lr`, or the optimizer's default.
    pub fn lr(&self) -> anyhow::Result<f64> {
        Ok(setup::check_lr(
            self.lr.unwrap_or(setup::default_lr(self.optimizer_kind()?)),
        )?)
    }

    /// `--dtype`, f32 when not given.
    pub fn dtype(&self) -> &str {
        self.dtype.as_deref().unwrap_or("f32")
    }

    /// `--batch-size`, at least 1.
    pub fn batch(&self) -> anyhow::Result<usize> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        Ok(self.batch_size)
    }

    /// `--batch-size` for a training step of `spec`: at least 1 row, and 2 with BatchNorm,
    /// which normalizes by the batch's statistics.
    pub fn batch_for(&self, spec: &MlpSpec) -> anyhow::Result<usize> {
        let batch = self.batch()?;
        let least = spec.smallest_training_batch();
        if batch < least {
            bail!("--batch-size {batch}: BatchNorm (--norm batch) normalizes by the batch's statistics in training, which need {least} rows or more a step");
        }
        Ok(batch)
    }

    /// `--update-in-backward`, refused beside f16's loss scaling and clipping.
    pub fn updates_in_backward(&self) -> anyhow::Result<bool> {
        if self.update_in_backward && self.dtype() == "f16" {
            bail!(crate::device::updates_with_f16());
        }
        if self.update_in_backward && self.clip_grad_norm.is_some() {
            bail!(updates_with_clipping());
        }
        Ok(self.update_in_backward)
    }
}

/// What a step keeps for backward (`remat` and `scale` take a list, `--policies`, which
/// `--checkpoint` also names there).
#[derive(Args, Debug, Clone)]
pub struct CheckpointFlag {
    /// Activation checkpointing: none, cheap (recompute activations and bias adds), sqrt (keep ~sqrt(n) layer boundaries, recompute segments), every:K, revolve:S (binomial: at most S checkpoints alive, layers rerun more than once), budget:SIZE (least recompute time whose predicted peak fits, nested plans included, e.g. budget:1.5GiB)
    #[arg(long, default_value = "none", value_name = "POLICY")]
    pub checkpoint: String,
}

impl CheckpointFlag {
    /// The policy: the one place `--checkpoint`'s text becomes one.
    pub fn policy(&self) -> anyhow::Result<CheckpointPolicy> {
        self.checkpoint.parse().map_err(|e| anyhow::anyhow!("--checkpoint {e}"))
    }
}

/// The step flags resolved: what a measuring tool's every step trains with.
pub struct StepSettings {
    pub optimizer: OptimizerConfig,
    pub lr: f64,
    pub update_in_backward: bool,
}

impl StepSettings {
    pub fn from_flags(step: &StepFlags) -> anyhow::Result<Self> {
        Ok(StepSettings {
            optimizer: step.optimizer()?,
            lr: step.lr()?,
            update_in_backward: step.updates_in_backward()?,
        })
    }

    /// One step's configuration at `batch` under `policy`.
    pub fn config(&self, batch: usize, policy: CheckpointPolicy) -> TrainConfig {
        TrainConfig {
            update_in_backward: self.update_in_backward,
            ..TrainConfig::measuring(batch, policy, self.optimizer.clone(), self.lr)
        }
    }
}

/// Why `--update-in-backward` and `--clip-grad-norm` do not go together.
pub fn updates_with_clipping() -> String {
    let rule = chainrule::optim::clip::NO_CLIPPING_INSIDE_BACKWARD;
    format!("--update-in-backward with --clip-grad-norm: {rule}; drop one of them")
}
