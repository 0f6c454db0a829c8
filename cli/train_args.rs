//! `chainrule train`'s flags, each with its default.

use crate::model_flags::{CheckpointFlag, ModelFlags, StepFlags};
use crate::paths::{self, Role};
use anyhow::bail;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Folder with the four MNIST IDX files (train-images-idx3-ubyte[.gz] or train-images.idx3-ubyte, and t10k-/test- for the test split) [default: the built-in MNIST subset]
    #[arg(long, value_name = "DIR", conflicts_with = "csv")]
    pub data: Option<PathBuf>,
    /// CSV file with the integer label in the first column, then the features (with --loss mse: targets in --target-columns, features in the rest); a first row whose first cell, or half its cells, are text is a header
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// What the model learns: cross-entropy (classify; integer labels) or mse (regress on real-valued targets in --csv, the columns --target-columns names; the model's outputs are the predicted targets, and each epoch reports RMSE and R²) [default: cross-entropy; with --resume, the saved model's]
    #[arg(long, value_name = "LOSS")]
    pub loss: Option<String>,
    /// With --loss mse: the --csv columns that hold the targets, 1-based as a spreadsheet counts them: 1, 2-4, 1,7 or last (the other columns are the features; one target a column) [default: 1]
    #[arg(long, value_name = "COLUMNS")]
    pub target_columns: Option<String>,
    /// CSV test split for --csv [default: hold out --test-fraction of --csv]
    #[arg(long, value_name = "FILE", requires = "csv")]
    pub test_csv: Option<PathBuf>,
    /// Share of --csv rows held out (seeded) for testing when --test-csv is not given [default: 0.2]
    #[arg(long, value_name = "P")]
    pub test_fraction: Option<f64>,
    /// Share of the training split held out (seeded, any data source) for validation: its loss and accuracy are shown every epoch, and --early-stop and --save-best watch its loss [default: 0, none; a resumed run keeps its own]
    #[arg(long, value_name = "P")]
    pub val_fraction: Option<f64>,
    /// Stop when the validation loss has not improved for N epochs (needs --val-fraction)
    #[arg(long, value_name = "N")]
    pub early_stop: Option<u64>,
    /// Save the model of the epoch with the lowest validation loss here (atomically, like --save; needs --val-fraction)
    #[arg(long, value_name = "FILE")]
    pub save_best: Option<PathBuf>,
    /// Learning-rate schedule: constant, step[:EVERY_EPOCHS[:GAMMA]] (multiply by GAMMA every EVERY_EPOCHS; a bare `step` is step:5:0.1), cosine[:WARMUP_EPOCHS] (linear warm-up, 0 epochs when omitted, then cosine decay to zero at --epochs)
    #[arg(long, default_value = "step:8:0.5", value_name = "SCHEDULE")]
    pub schedule: String,
    /// Total epochs; with --resume, the run continues until this many are done [default: 30, or the saved run's]
    #[arg(long, value_name = "N")]
    pub epochs: Option<u64>,
    /// Seed for initialisation, shuffling and dropout
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Augment image data with random shifts of up to N pixels each way (0: off); not for CSV data
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub augment_shift: usize,
    /// Standardize each feature to zero mean and unit variance (statistics of the training split)
    #[arg(long)]
    pub standardize: bool,
    /// Check the first step's gradients (and BatchNorm's running statistics) against a step without checkpointing and report the largest difference
    #[arg(long)]
    pub verify_checkpoint: bool,
    /// Whole-step CUDA graphs on a GPU: after a warm-up step, one step is captured (forward, backward, the updates and the step guard) and replayed every later step of the same size, one launch instead of one per kernel. auto: capture when the step can be captured, else say why once and run eagerly; on: capture or stop with the reason; off: never. Not with data-parallel jobs or on the CPU (on is refused there)
    #[arg(long, default_value = "off", value_name = "auto|on|off")]
    pub cuda_graph: chainrule::backend::StepGraphs,
    /// Device: auto (the first GPU if usable, else the CPU), cpu, or cuda[:N]
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Data-parallel training on these GPUs of this machine: numbers (0,1,2,3) or all (every GPU this process sees; an error naming the cause where none is usable). One process each, started here, each taking its share of every --batch-size batch (the global batch); gradients are summed through NCCL. Under torchrun, srun or mpirun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set) this process is one rank and takes entry LOCAL_RANK of the list; with no list (or all), GPU LOCAL_RANK of those it sees, or its only GPU when it sees one (SLURM's --gpus-per-task 1, CUDA_VISIBLE_DEVICES per task) [default: one device, --device]
    #[arg(long, value_name = "LIST|all")]
    pub devices: Option<chainrule::dist::DeviceList>,
    /// How the ranks of a data-parallel job meet: tcp (rank 0 listens at MASTER_ADDR:MASTER_PORT) or file:PATH (a file on a filesystem every rank shares; it must not exist when the job starts, and rank 0 removes it once every rank has read it)
    #[arg(long, default_value = "tcp", value_name = "HOW")]
    pub rendezvous: String,
    /// How long a data-parallel rank waits for the others: at the rendezvous, and for any rank's gradients in a step
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub rendezvous_timeout: u64,
    /// On the CPU, refuse allocations past this size (as a GPU would), e.g. 2GiB [default: the memory this machine has free when the run starts]
    #[arg(long, value_name = "SIZE")]
    pub memory_limit: Option<String>,
    /// On a GPU, run f32 matrix products in TF32 on the tensor cores (faster, ~1e-3 relative error)
    #[arg(long)]
    pub tf32: bool,
    /// Save weights, optimizer and training state here (safetensors) after every epoch and when a stop signal (Ctrl-C, SIGTERM, SIGHUP, SIGUSR1) ends the run; written atomically
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Continue a run saved with --save: its model, optimizer and settings are used (a setting flag that disagrees with the file is an error). `auto`: the --save file if it exists, else a new run, so one job script serves a first start and every requeue after a stop signal
    #[arg(long, value_name = "FILE|auto")]
    pub resume: Option<PathBuf>,
    /// Set by `--resume auto` when there was nothing to resume.
    #[arg(skip)]
    pub fresh_by_auto_resume: bool,
    /// Draw loss and accuracy per epoch (train, validation, test) into this SVG after every epoch; with --metrics-out, a resumed run's plot has its earlier epochs too
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Write JSON lines: one per logged step ("kind":"step") and one per epoch ("kind":"epoch")
    #[arg(long, value_name = "FILE")]
    pub metrics_out: Option<PathBuf>,
    /// Log a step record (and refresh the progress bar's loss) every N steps; on a GPU the loss is read back (a wait for the device) only then and at the end of each epoch
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub log_every: u64,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub step: StepFlags,
    #[command(flatten)]
    pub checkpoint: CheckpointFlag,
}

impl TrainArgs {
    /// Whether `field`'s flag was typed on the command line (not left at its default): a
    /// resumed run refuses those that would change what it was saved with.
    pub fn typed(&self, field: &str) -> bool {
        self.step.typed(field)
    }

    /// What the flags alone can say is wrong, before anything is read or started: zero
    /// counts, one file named for two roles, output files that could not be written (by
    /// the process that writes them: not by a data-parallel rank past 0, which writes
    /// nothing and would find rank 0 already holding the save's lock).
    pub fn check(&self, writes: bool) -> anyhow::Result<()> {
        for (flag, zero) in [
            ("--batch-size", self.step.batch_size == 0),
            ("--log-every", self.log_every == 0),
            ("--epochs", self.epochs == Some(0) && self.resume.is_none()),
        ] {
            if zero {
                bail!("{flag} must be at least 1");
            }
        }
        paths::distinct(&[
            ("--save", self.save.as_deref(), Role::Output),
            ("--save-best", self.save_best.as_deref(), Role::Output),
            ("--plot", self.plot.as_deref(), Role::Output),
            ("--metrics-out", self.metrics_out.as_deref(), Role::Output),
            ("--resume", self.resume.as_deref(), Role::Input),
            ("--csv", self.csv.as_deref(), Role::Input),
            ("--test-csv", self.test_csv.as_deref(), Role::Input),
            ("--data", self.data.as_deref(), Role::Input),
        ])?;
        if writes {
            paths::check_outputs(self.save.as_deref(), self.plot.as_deref(), self.metrics_out.as_deref())?;
        }
        Ok(())
    }
}
