//! The `chainrule` command: parses flags, calls the engine, prints tables and JSON.

mod agreement;
mod bench;
mod chart;
mod classes;
mod configuration;
mod data_source;
mod device;
mod eval;
mod eval_rows;
mod export;
mod fp8_coverage;
mod info;
mod launch;
mod lists;
mod metrics;
mod model_flags;
mod paths;
mod plan;
mod predict;
mod product_ceiling;
mod rank;
mod regression_flags;
mod remat;
mod resume_flags;
mod same_data;
mod scale;
mod scale_args;
mod scale_report;
mod stop_signals;
mod synthetic;
mod thread_pool;
mod timing;
mod train;
mod train_args;
mod train_end;
mod train_plot;
mod train_report;
mod verify_checkpoint;
mod voice;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chainrule",
    version,
    about = "Train MLPs from the command line, and study memory/compute trade-offs in backprop.",
    long_about = "Train MLPs from the command line, and study memory/compute trade-offs in backprop.\n\n\
        With no data flags, `chainrule train` learns handwritten digits from the MNIST subset built into the binary.\n\
        Diagnostics go to stderr through RUST_LOG (e.g. RUST_LOG=chainrule=debug); results go to stdout."
)]
struct Cli {
    /// Worker threads for matrix products and elementwise kernels, at most 4 per core [default: all cores]
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an MLP: a classifier (default: the built-in MNIST subset), or a regression on CSV targets (--loss mse)
    Train(Box<train::TrainArgs>),
    /// Evaluate a saved model: loss, accuracy and confusion matrix (a regression: loss, RMSE and R²)
    Eval(eval::EvalArgs),
    /// Predict with a saved model: each example's class and probability, or a regression's values (IDX, CSV, PNG/PGM inputs)
    Predict(predict::PredictArgs),
    /// Export a saved model to ONNX (normalization included)
    Export(export::ExportArgs),
    /// Version, backends compiled in and usable, threads
    Info,
    /// Time training steps of an MLP: samples/s, GFLOP/s, against the bare matrix products
    Bench(bench::BenchArgs),
    /// Show a checkpoint plan and its predicted memory and recompute, before running anything
    Plan(plan::PlanArgs),
    /// Measure memory and time of checkpoint policies across depths (table, CSV, JSON, SVG)
    Remat(remat::RematArgs),
    /// Largest batch (or depth) each checkpoint policy fits in a memory limit, and throughput
    Scale(scale::ScaleArgs),
}

/// The stack of the threads that plan and run steps. A plan for a chain of thousands of
/// layers is a nested structure walked recursively, as deep as the chain: a default 2-8
/// MiB stack overflowed at ~10,000 layers (an abort); 256 MiB holds hundreds of thousands.
/// This is address space, not memory: only the pages a walk touches are used.
const DEEP_STACK: usize = 256 << 20;

fn main() {
    // Only the command's thread takes the stop signals (`stop_signals`).
    stop_signals::block_on_this_thread();
    let work = std::thread::Builder::new()
        .name("chainrule".into())
        .stack_size(DEEP_STACK)
        .spawn(run);
    match work {
        // Every path out of `run` exits the process itself; a panic already said why.
        Ok(w) => {
            let _ = w.join();
            std::process::exit(101);
        }
        // A system that will not reserve the address space (strict overcommit): the
        // default stack, which holds plans of thousands of layers still.
        Err(_) => run(),
    }
}

fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    chainrule::backend::cpu::keep_freed_memory();
    exit_quietly_on_closed_pipe();
    exit_cleanly_when_stdout_fails();
    let cli = parse_cli();
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let deep_pool = match thread_pool::build(threads, DEEP_STACK) {
        Ok(deep) => deep,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    let command = move || {
        stop_signals::take_on_this_thread();
        run_command(cli.command)
    };
    // On a pool thread the step's parallel pieces cost no sleep and wake-up of this thread
    // (`run_on_pool_thread`); that needs the pool's deep stacks, which hold the command.
    let result = match deep_pool {
        true => chainrule::backend::cpu::run_on_pool_thread(command),
        false => command(),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One write: the ranks of a job share stderr, and their lines must not interleave.
            let line = format!("error: {e:#}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            std::process::exit(1);
        }
    }
}

/// Runs the command the flags name; its exit status.
fn run_command(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Export(a) => export::run(a),
        Command::Info => info::run(),
        Command::Bench(a) => bench::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Remat(a) => remat::run(a),
        Command::Scale(a) => scale::run(a),
    }
}

/// The command line, with negative numbers taken as values everywhere (`--dropout -0.1`
/// reaches the flag's own check, which names it, instead of being an unknown argument).
fn parse_cli() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command()
        .allow_negative_numbers(true)
        .mut_subcommands(|s| s.allow_negative_numbers(true));
    let matches = command.get_matches_from(negative_values_attached(std::env::args_os()));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Some(step), Some((_, m))) = (cli.command.step_flags(), matches.subcommand()) {
        use clap::parser::ValueSource;
        step.given = m
            .ids()
            .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect();
    }
    cli
}

impl Command {
    /// The shared step flags of the tools that have them, which record what was typed.
    fn step_flags(&mut self) -> Option<&mut model_flags::StepFlags> {
        match self {
            Command::Train(a) => Some(&mut a.step),
            Command::Bench(a) => Some(&mut a.step),
            Command::Plan(a) => Some(&mut a.step),
            Command::Remat(a) => Some(&mut a.step),
            Command::Scale(a) => Some(&mut a.step),
            _ => None,
        }
    }
}

/// `--lr -1e-3` as `--lr=-1e-3`: a value that starts with a minus and reads as a negative
/// number (`-1e-3`, `-.5`, `-inf`, `-1GiB`, `-784-10`) belongs to the long flag before it,
/// where that flag's own check names what is wrong with it. (clap takes only plain
/// negative numbers as values; the rest it reads as unknown short flags.)
fn negative_values_attached(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let negative = |a: &str| {
        let rest = a.strip_prefix('-').unwrap_or("");
        a.starts_with('-')
            && (rest.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                || ["inf", "infinity", "nan"].contains(&rest.to_ascii_lowercase().as_str()))
    };
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    for arg in args {
        let flag = out
            .last()
            .and_then(|f| f.to_str())
            .filter(|f| f.starts_with("--") && f.len() > 2 && !f.contains('='));
        match (flag, arg.to_str()) {
            (Some(f), Some(v)) if negative(v) => {
                let joined = format!("{f}={v}");
                *out.last_mut().expect("a flag before") = joined.into();
            }
            _ => out.push(arg),
        }
    }
    out
}

/// `chainrule plan --explain | head` should end like any Unix tool when the reader goes away,
/// not panic in `println!`: restore the default SIGPIPE action Rust's runtime ignores.
fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: sets a process-wide signal disposition once, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `println!` panics when stdout cannot be written (`> /dev/full`): end with one error line
/// and exit code 1, as for any other failed write, instead of a panic message.
fn exit_cleanly_when_stdout_fails() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(why) = message.strip_prefix("failed printing to stdout: ") {
            eprintln!("error: writing to stdout: {why}");
            std::process::exit(1);
        }
        default(info);
    }));
}
