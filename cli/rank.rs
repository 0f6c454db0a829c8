//! This process's place in a data-parallel job (`train --devices`, torchrun, srun, mpirun),
//! read from torchrun's environment convention (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
//! MASTER_PORT): the GPU it takes, the rendezvous and collective it joins, and the rule that
//! only rank 0 prints and writes files.

use crate::train_args::TrainArgs;
use anyhow::{bail, Context};
use chainrule::backend::Device;
use chainrule::dist::{
    file_rendezvous, gpu_for_rank, rendezvous, tcp::TcpCollective, Collective, CollectiveError, DeviceList, Group,
};
use chainrule::exec::ExecError;
use chainrule::train::{Control, TrainError, Trainer};
use std::sync::Arc;
use std::time::Duration;

/// With the value `loopback`, ranks on the CPU sum over TCP between processes: for tests of
/// the launcher, rendezvous and failure paths only. Users' jobs run on GPUs through NCCL.
pub const TEST_COLLECTIVE: &str = "CHAINRULE_TEST_COLLECTIVE";

/// Test hook, `RANK:STEP`: that rank kills itself (SIGKILL) once it has trained that step.
pub const TEST_KILL: &str = "CHAINRULE_TEST_KILL_RANK";

/// The most ranks a job may have (the settings check sums small integers exactly up to it).
const MAX_RANKS: usize = 65_536;
/// The longest `--rendezvous-timeout`: a week.
const MAX_WAIT_SECS: u64 = 7 * 24 * 3600;

/// Whether the test-only collective is asked for ([`TEST_COLLECTIVE`]); any other value is an error.
pub fn test_collective() -> anyhow::Result<bool> {
    match std::env::var(TEST_COLLECTIVE) {
        Err(_) => Ok(false),
        Ok(v) if v == "loopback" => Ok(true),
        Ok(v) => bail!("{TEST_COLLECTIVE}='{v}': its only value is loopback (a collective for tests)"),
    }
}

/// Set in a rank past 0: it prints nothing but its errors ([`note`], and no progress bar).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process is a rank past 0 of a job.
pub fn quiet_rank() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// An informational line on stderr (which device, which file is resumed): rank 0's alone.
pub fn note(line: &str) {
    if !quiet_rank() {
        eprintln!("{line}");
    }
}

pub struct RankEnv {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    /// Where the ranks meet: rank 0's `host:port`, or a shared file.
    pub meet: Meeting,
}

/// `--rendezvous`: where the ranks of a job meet.
pub enum Meeting {
    Tcp(String),
    File(std::path::PathBuf),
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> anyhow::Result<T> {
    value
        .trim()
        .parse()
        .ok()
        .with_context(|| format!("{name}='{value}': expected a whole number"))
}

impl RankEnv {
    /// This process's rank, where a launcher set WORLD_SIZE above 1; `None` otherwise.
    /// `rendezvous` is `--rendezvous`: with a file, MASTER_ADDR and MASTER_PORT are not needed.
    pub fn from_env(rendezvous: &str) -> anyhow::Result<Option<Self>> {
        if rendezvous != "tcp" && rendezvous.strip_prefix("file:").is_none_or(str::is_empty) {
            bail!("--rendezvous '{rendezvous}': expected tcp or file:PATH");
        }
        let Some(world) = var("WORLD_SIZE") else {
            if let Some(rank) = var("RANK") {
                note(&format!(
                    "note: RANK={rank} is set but WORLD_SIZE is not: training as one process"
                ));
            }
            return Ok(None);
        };
        let world: usize = number("WORLD_SIZE", &world)?;
        if world == 0 || world > MAX_RANKS {
            bail!("WORLD_SIZE={world}: a job has 1 to {MAX_RANKS} ranks");
        }
        if world == 1 {
            return Ok(None);
        }
        let missing = |name: &str, what: &str| format!("WORLD_SIZE={world} is set but {name} is not: {what}");
        let rank: usize = number(
            "RANK",
            &var("RANK").with_context(|| missing("RANK", "this process's rank, 0 to WORLD_SIZE-1"))?,
        )?;
        if rank >= world {
            bail!("RANK={rank} with WORLD_SIZE={world}: a rank is 0 to WORLD_SIZE-1");
        }
        let local_rank = match var("LOCAL_RANK") {
            Some(v) => number("LOCAL_RANK", &v)?,
            None => rank,
        };
        let meet = match rendezvous.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Meeting::File(path.into()),
            _ if rendezvous == "tcp" => Meeting::Tcp(master(world)?),
            _ => bail!("--rendezvous '{rendezvous}': expected tcp or file:PATH"),
        };
        Ok(Some(RankEnv {
            rank,
            world,
            local_rank,
            meet,
        }))
    }

    /// The `--device` this rank runs on, by [`gpu_for_rank`]'s rule: entry LOCAL_RANK of
    /// `--devices`, else GPU LOCAL_RANK of those this process sees, or its only one.
    pub fn device_flag(&self, a: &TrainArgs) -> anyhow::Result<String> {
        let listed = match &a.devices {
            Some(DeviceList::Listed(gpus)) => Some(gpus.as_slice()),
            _ => None,
        };
        if a.device == "cpu" {
            // CPU ranks (the test collective): the list still has to hold this rank.
            gpu_for_rank(self.local_rank, listed, usize::MAX).map_err(|e| devices_error(a, e))?;
            return Ok("cpu".into());
        }
        if a.device.starts_with("cuda:") {
            bail!(
                "--device {}: in a data-parallel job each rank takes its own GPU; list them with --devices (rank {} takes entry LOCAL_RANK={}) or leave it to LOCAL_RANK",
                a.device,
                self.rank,
                self.local_rank
            );
        }
        let visible = chainrule::backend::gpus().map_or(0, |g| g.len());
        let gpu = gpu_for_rank(self.local_rank, listed, visible).map_err(|e| devices_error(a, e))?;
        Ok(format!("cuda:{gpu}"))
    }

    /// Meets the other ranks and joins the job's collective on `device`.
    pub fn join(&self, device: &Arc<dyn Device>, timeout: Duration) -> anyhow::Result<Arc<dyn Collective>> {
        let (rank, world) = (self.rank, self.world);
        if test_collective()? {
            let Meeting::Tcp(at) = &self.meet else {
                bail!("the test collective sums over the TCP rendezvous's connections: use --rendezvous tcp");
            };
            let (_, links) = rendezvous::meet(at, rank, world, || Ok(Vec::new()), timeout)?;
            return Ok(Arc::new(TcpCollective::new(links, timeout)));
        }
        // Before the rendezvous: a machine without NCCL fails now, not at the others' timeout.
        device.collective_ready()?;
        let make = || device.collective_id().map_err(|e| e.to_string());
        let id = match &self.meet {
            Meeting::Tcp(at) => rendezvous::meet(at, rank, world, make, timeout)?.0,
            Meeting::File(path) => file_rendezvous::meet_by_file(path, rank, world, make, timeout)?,
        };
        Ok(device.join_collective(rank, world, &id)?)
    }

    /// Ranks past 0 print nothing and write no file: rank 0 speaks and saves for the job
    /// (every rank holds the same model). Their errors still reach stderr.
    pub fn quiet(&self, a: &mut TrainArgs) -> anyhow::Result<()> {
        crate::agreement::record_outputs(a);
        if self.rank == 0 {
            return Ok(());
        }
        (a.save, a.save_best, a.plot, a.metrics_out) = (None, None, None, None);
        QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .context("opening /dev/null for a quiet rank's stdout")?;
        // SAFETY: replaces file descriptor 1 by another open descriptor; nothing holds 1's old file.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1) } < 0 {
            bail!("could not silence rank {}'s stdout", self.rank);
        }
        Ok(())
    }

    /// The run's banner line about the job.
    pub fn banner(&self, batch: usize) -> String {
        format!(
            "data-parallel: {} ranks, rendezvous at {}; each --batch-size {batch} batch is split into {} to {} rows per rank",
            self.world,
            match &self.meet {
                Meeting::Tcp(at) => at.clone(),
                Meeting::File(path) => format!("file:{}", path.display()),
            },
            batch / self.world,
            batch.div_ceil(self.world)
        )
    }

    /// The step after which [`TEST_KILL`] kills this rank, if it names it.
    pub fn kill_after(&self) -> Option<u64> {
        let v = std::env::var(TEST_KILL).ok()?;
        let (rank, step) = v.split_once(':')?;
        (rank.parse::<usize>().ok()? == self.rank).then(|| step.parse().ok())?
    }
}

/// What `--devices` and a launcher's environment make of this run: `Some(code)` where this
/// process started the ranks itself and the job is over; otherwise `--device` is set to this
/// process's device (and a rank past 0 is quieted).
pub fn place(a: &mut TrainArgs, job: Option<&RankEnv>) -> anyhow::Result<Option<i32>> {
    if a.rendezvous_timeout == 0 || a.rendezvous_timeout > MAX_WAIT_SECS {
        bail!(
            "--rendezvous-timeout {}: expected 1 to {MAX_WAIT_SECS} seconds (a week)",
            a.rendezvous_timeout
        );
    }
    let test_job = test_collective()?;
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
    // Under a launcher of its own (WORLD_SIZE set, even to 1) this process is one rank.
    let launched = var("WORLD_SIZE").is_some();
    let gpus = match (&a.devices, a.device == "cpu") {
        (None, _) => None,
        // CPU processes (the test collective) stand in for the GPUs listed.
        (Some(DeviceList::Listed(list)), true) => Some(list.clone()),
        (Some(list), _) => Some(
            list.resolve(chainrule::backend::gpus().map(|g| g.len()))
                .map_err(|e| devices_error(a, e))?,
        ),
    };
    match (&job, gpus) {
        (None, Some(list)) if list.len() > 1 && !launched => {
            return crate::launch::run(&list, a.device == "cpu").map(Some);
        }
        (None, Some(list)) if a.device != "cpu" => {
            let local = var("LOCAL_RANK").map_or(Ok(0), |v| number::<usize>("LOCAL_RANK", &v))?;
            let gpu = gpu_for_rank(local, Some(&list), list.len()).map_err(|e| devices_error(a, e))?;
            a.device = format!("cuda:{gpu}");
        }
        (Some(j), _) => {
            end_with_launcher()?;
            a.device = j.device_flag(a)?;
            j.quiet(a)?;
        }
        _ => {}
    }
    Ok(None)
}

/// A placement error, naming `--devices` (and what it was given) where it came from it.
fn devices_error(a: &TrainArgs, e: chainrule::dist::PlacementError) -> anyhow::Error {
    match &a.devices {
        Some(list) => anyhow::anyhow!("--devices {list}: {e}"),
        None => anyhow::anyhow!("{e}"),
    }
}

/// Makes `trainer` its rank of the job, if this process is one; the job's collective.
pub fn join_job(
    job: Option<&RankEnv>,
    device: &Arc<dyn Device>,
    trainer: &mut Trainer,
    timeout_secs: u64,
) -> anyhow::Result<Option<Arc<dyn Collective>>> {
    let Some(j) = job else {
        return Ok(None);
    };
    let c = j.join(device, Duration::from_secs(timeout_secs))?;
    trainer.join(Group::new(c.clone()))?;
    Ok(Some(c))
}

/// A step that failed because a rank was lost ends the run as Ctrl-C does, so rank 0 saves
/// the last step every rank completed (the failed step changed nothing: its sums come before
/// its update), and the loss is reported as an error after. Not inside backward, where some
/// parameters may have been updated before the failure: that run ends unsaved.
pub fn saving_on_lost_rank(
    result: Result<Control, TrainError>,
    inside_backward: bool,
    lost: &std::cell::RefCell<Option<CollectiveError>>,
) -> Result<Control, TrainError> {
    match result {
        Err(TrainError::Exec(ExecError::Collective(e))) if !inside_backward => {
            lost.replace(Some(e));
            Ok(Control::Stop)
        }
        other => other,
    }
}

/// Whether to stop after this step. In a job every rank must stop at the same step: ranks
/// agree (any rank's Ctrl-C stops all) at steps whose loss is read anyway, the same on every
/// rank, so other steps wait for nothing. A lost rank is an error (after rank 0 saves).
pub fn agree_to_stop(collective: Option<&dyn Collective>, stop: bool, logged: bool) -> Result<bool, CollectiveError> {
    let Some(c) = collective else {
        return Ok(stop);
    };
    if !logged {
        return Ok(false);
    }
    let mut v = [f32::from(u8::from(stop))];
    c.all_reduce_sum(&mut v)?;
    Ok(v[0] > 0.0)
}

/// Rank 0's `host:port` from MASTER_ADDR and MASTER_PORT.
fn master(world: usize) -> anyhow::Result<String> {
    let missing = |name: &str, what: &str| format!("WORLD_SIZE={world} is set but {name} is not: {what}");
    let addr = var("MASTER_ADDR").with_context(|| missing("MASTER_ADDR", "the host rank 0 runs on"))?;
    let port: u32 = number(
        "MASTER_PORT",
        &var("MASTER_PORT").with_context(|| missing("MASTER_PORT", "a free port on rank 0's host"))?,
    )?;
    let mut port = u16::try_from(port)
        .ok()
        .filter(|&p| p > 0)
        .with_context(|| format!("MASTER_PORT={port}: a port is 1 to 65535"))?;
    // torchrun's agent may hold MASTER_PORT for its own store: then ours is the next one.
    if var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        port = port
            .checked_add(1)
            .context("MASTER_PORT=65535 is held by torchrun's store; the rendezvous needs the port after it")?;
    }
    let master = match addr.contains(':') && !addr.starts_with('[') {
        true => format!("[{addr}]:{port}"), // an IPv6 address
        false => format!("{addr}:{port}"),
    };
    // A name that does not resolve would otherwise look like a rank 0 that never came up.
    std::net::ToSocketAddrs::to_socket_addrs(master.as_str())
        .with_context(|| format!("MASTER_ADDR='{addr}' does not resolve to an address"))?;
    Ok(master)
}

/// A rank `--devices` started gets SIGTERM when its launcher ends (killed included), and
/// ends now if the launcher is already gone.
fn end_with_launcher() -> anyhow::Result<()> {
    let Some(launcher) = var(crate::launch::LAUNCHER).and_then(|v| v.parse::<i32>().ok()) else {
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

/// Kills this process as a crash would (the test of a rank lost mid-job).
pub fn die() -> ! {
    // SAFETY: raising a signal has no preconditions; SIGKILL ends the process here.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!("SIGKILL returned")
}
