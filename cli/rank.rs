//! This process's place in a run, decided once from the flags and the launcher's
//! environment: alone, the launcher of ranks (`--devices` with several GPUs,
//! [`crate::launch`]), or one rank of a data-parallel job ([`chainrule::dist::Job`]) on the
//! GPU [`gpu_for_rank`] picks. Only rank 0 speaks and writes files ([`Voice`]).

use crate::train_args::TrainArgs;
use crate::voice::Voice;
use anyhow::bail;
use chainrule::dist::job::rendezvous_wait;
use chainrule::dist::{gpu_for_rank, DeviceList, Job, JobError, LauncherEnv, PlacementError, Rendezvous};
use std::time::Duration;

/// What this process does with the run.
pub enum Place {
    /// It started the ranks itself (`--devices` with several GPUs): the job's exit code.
    Launcher(i32),
    /// It trains: alone, or as one rank of a job.
    Trains(Placement),
}

/// Where and as what this process trains.
pub struct Placement {
    /// The `--device` this process opens: `--device`, or its own GPU of `--devices`.
    pub device: String,
    pub voice: Voice,
    pub job: Option<Job>,
    /// How long a rank waits for the others (`--rendezvous-timeout`).
    pub wait: Duration,
}

/// The job this process is a rank of, if any: `--rendezvous` and the launcher's variables.
pub fn read_job(a: &TrainArgs, env: &LauncherEnv) -> anyhow::Result<Option<Job>> {
    let rendezvous: Rendezvous = a.rendezvous.parse().map_err(flag_named)?;
    if let Some(rank) = env.stray_rank() {
        eprintln!("note: RANK={rank} is set but WORLD_SIZE is not: training as one process");
    }
    Job::from_env(&rendezvous, env).map_err(flag_named)
}

/// A job's error, naming the flag it came from where it came from one.
fn flag_named(e: JobError) -> anyhow::Error {
    match e {
        JobError::Rendezvous(_) => anyhow::anyhow!("--rendezvous {e}"),
        JobError::Wait(_) => anyhow::anyhow!("--rendezvous-timeout {e}"),
        JobError::TestCollectiveByFile => anyhow::anyhow!("{e}: use --rendezvous tcp"),
        e => e.into(),
    }
}

/// What `--devices` and a launcher's environment make of this run: the ranks started here,
/// or the device this process trains on and whether it speaks for the run.
pub fn place(a: &TrainArgs, job: Option<Job>, env: &LauncherEnv) -> anyhow::Result<Place> {
    let wait = rendezvous_wait(a.rendezvous_timeout).map_err(flag_named)?;
    let test_job = env.test_collective()?;
    if let (Some(list), false) = (&a.devices, a.device == "auto" || a.device == "cuda") {
        if a.device == "cpu" && !test_job {
            bail!(
                "--devices with --device cpu: data-parallel jobs run on GPUs through NCCL; the CPU has no collective"
            );
        }
        if a.device != "cpu" {
            bail!(
                "--devices {list} and --device {}: give one (--devices picks each rank's GPU)",
                a.device
            );
        }
    }
    let gpus = match (&a.devices, a.device == "cpu") {
        (None, _) => None,
        // CPU processes (the test collective) stand in for the GPUs listed.
        (Some(DeviceList::Listed(list)), true) => Some(list.clone()),
        (Some(list), _) => Some(
            list.resolve(chainrule::backend::gpus().map(|g| g.len()))
                .map_err(|e| devices_error(a, e))?,
        ),
    };
    let device = match (&job, gpus) {
        // Under a launcher of its own (WORLD_SIZE set, even to 1) this process is one rank.
        (None, Some(list)) if list.len() > 1 && !env.launched() => {
            return crate::launch::run(&list, a.device == "cpu").map(Place::Launcher);
        }
        (None, Some(list)) if a.device != "cpu" => {
            let local = env.local_rank()?.unwrap_or(0);
            let gpu = gpu_for_rank(local, Some(&list), list.len()).map_err(|e| devices_error(a, e))?;
            format!("cuda:{gpu}")
        }
        (Some(j), _) => {
            end_with_launcher()?;
            let device = device_flag(j, a)?;
            if j.rank > 0 {
                silence_stdout(j.rank)?;
            }
            device
        }
        _ => a.device.clone(),
    };
    let voice = match &job {
        Some(j) if j.rank > 0 => Voice::Quiet,
        _ => Voice::Speaks,
    };
    Ok(Place::Trains(Placement {
        device,
        voice,
        job,
        wait,
    }))
}

/// The `--device` a rank runs on, by [`gpu_for_rank`]'s rule: entry LOCAL_RANK of
/// `--devices`, else GPU LOCAL_RANK of those this process sees, or its only one.
fn device_flag(job: &Job, a: &TrainArgs) -> anyhow::Result<String> {
    let listed = match &a.devices {
        Some(DeviceList::Listed(gpus)) => Some(gpus.as_slice()),
        _ => None,
    };
    if a.device == "cpu" {
        // CPU ranks (the test collective): the list still has to hold this rank.
        gpu_for_rank(job.local_rank, listed, usize::MAX).map_err(|e| devices_error(a, e))?;
        return Ok("cpu".into());
    }
    if a.device.starts_with("cuda:") {
        bail!(
            "--device {}: in a data-parallel job each rank takes its own GPU; list them with --devices (rank {} takes entry LOCAL_RANK={}) or leave it to LOCAL_RANK",
            a.device,
            job.rank,
            job.local_rank
        );
    }
    let visible = chainrule::backend::gpus().map_or(0, |g| g.len());
    let gpu = gpu_for_rank(job.local_rank, listed, visible).map_err(|e| devices_error(a, e))?;
    Ok(format!("cuda:{gpu}"))
}

/// A placement error, naming `--devices` (and what it was given) where it came from it.
fn devices_error(a: &TrainArgs, e: PlacementError) -> anyhow::Error {
    match &a.devices {
        Some(list) => anyhow::anyhow!("--devices {list}: {e}"),
        None => anyhow::anyhow!("{e}"),
    }
}

/// A rank past 0 prints nothing on stdout: rank 0 speaks for the job (every rank holds the
/// same model). Its errors still reach stderr.
fn silence_stdout(rank: usize) -> anyhow::Result<()> {
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| anyhow::anyhow!("opening /dev/null for a quiet rank's stdout: {e}"))?;
    // SAFETY: replaces file descriptor 1 by another open descriptor; nothing holds 1's old file.
    if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1) } < 0 {
        bail!("could not silence rank {rank}'s stdout");
    }
    Ok(())
}

/// A rank `--devices` started gets SIGTERM when its launcher ends (killed included), and
/// ends now if the launcher is already gone.
fn end_with_launcher() -> anyhow::Result<()> {
    let launcher = std::env::var(crate::launch::LAUNCHER).ok();
    let Some(launcher) = launcher.and_then(|v| v.parse::<i32>().ok()) else {
        return Ok(());
    };
    // SAFETY: prctl with PR_SET_PDEATHSIG and a signal number has no memory effects.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) } != 0 {
        bail!("could not tie this rank to its launcher (prctl)");
    }
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != launcher {
        bail!("the launcher (pid {launcher}) ended before this rank started");
    }
    Ok(())
}

/// The run's banner line about its job.
pub fn banner(job: &Job, batch: usize) -> String {
    format!(
        "data-parallel: {} ranks, rendezvous at {}; each --batch-size {batch} batch is split into {} to {} rows per rank",
        job.world,
        job.meeting,
        batch / job.world,
        batch.div_ceil(job.world)
    )
}

/// Kills this process as a crash would (the test of a rank lost mid-job).
pub fn die() -> ! {
    // SAFETY: raising a signal has no preconditions; SIGKILL ends the process here.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!("SIGKILL returned")
}
