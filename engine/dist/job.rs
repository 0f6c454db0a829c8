//! A data-parallel job as its launcher describes it, by torchrun's convention (RANK,
//! WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, set by torchrun, srun, mpirun or
//! `train --devices`), and joining it: meeting the other ranks and making the collective the
//! device supplies. The environment is read through a function, so tests hand in a map
//! instead of the process's environment, which every test thread shares.

use super::collective::Collective;
use super::file_rendezvous::meet_by_file;
use super::rendezvous::{self, RendezvousError};
use super::tcp::TcpCollective;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// With the value `loopback`, ranks on the CPU sum over TCP between processes: for tests of
/// the launcher, rendezvous and failure paths only. Users' jobs run on GPUs through NCCL.
pub const TEST_COLLECTIVE: &str = "CHAINRULE_TEST_COLLECTIVE";

/// Test hook, `RANK:STEP`: that rank kills itself (SIGKILL) once it has trained that step.
pub const TEST_KILL: &str = "CHAINRULE_TEST_KILL_RANK";

/// The most ranks a job may have ([`super::Group::agree`] sums small integers exactly up to it).
pub const MAX_RANKS: usize = 65_536;

/// The longest a rank waits for the others: a week.
pub const MAX_WAIT_SECS: u64 = 7 * 24 * 3600;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("'{0}': expected tcp or file:PATH")]
    Rendezvous(String),
    #[error("{0}: expected 1 to {MAX_WAIT_SECS} seconds (a week)")]
    Wait(u64),
    #[error("{name}='{value}': expected a whole number")]
    NotANumber { name: &'static str, value: String },
    #[error("WORLD_SIZE={0}: a job has 1 to {MAX_RANKS} ranks")]
    World(usize),
    #[error("WORLD_SIZE={world} is set but {name} is not: {what}")]
    Missing {
        world: usize,
        name: &'static str,
        what: &'static str,
    },
    #[error("RANK={rank} with WORLD_SIZE={world}: a rank is 0 to WORLD_SIZE-1")]
    Rank { rank: usize, world: usize },
    #[error("MASTER_PORT={0}: a port is 1 to 65535")]
    Port(u32),
    #[error("MASTER_PORT=65535 is held by torchrun's store; the rendezvous needs the port after it")]
    StorePort,
    #[error("MASTER_ADDR='{addr}' does not resolve to an address: {why}")]
    Unresolved { addr: String, why: String },
    #[error("{TEST_COLLECTIVE}='{0}': its only value is loopback (a collective for tests)")]
    TestCollective(String),
    #[error("the test collective sums over the TCP rendezvous's connections")]
    TestCollectiveByFile,
}

/// Why joining a job failed: the rendezvous, or the device's collective.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Rendezvous(#[from] RendezvousError),
    #[error("{0}")]
    Device(String),
    #[error(transparent)]
    Job(#[from] JobError),
}

/// How the ranks of a job meet: rank 0 listens at MASTER_ADDR:MASTER_PORT, or rank 0 leaves
/// the job's id in a file every rank can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rendezvous {
    Tcp,
    File(PathBuf),
}

impl std::str::FromStr for Rendezvous {
    type Err = JobError;

    fn from_str(text: &str) -> Result<Self, JobError> {
        match text.strip_prefix("file:") {
            _ if text == "tcp" => Ok(Rendezvous::Tcp),
            Some(path) if !path.is_empty() => Ok(Rendezvous::File(path.into())),
            _ => Err(JobError::Rendezvous(text.to_string())),
        }
    }
}

/// Where the ranks of this job meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Meeting {
    /// Rank 0's `host:port`.
    Tcp(String),
    /// A file on a filesystem every rank shares.
    File(PathBuf),
}

impl std::fmt::Display for Meeting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Meeting::Tcp(at) => write!(f, "{at}"),
            Meeting::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// One rank's view of its job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub rank: usize,
    pub world: usize,
    /// This rank's place among those on its machine: which GPU it takes.
    pub local_rank: usize,
    pub meeting: Meeting,
    /// Ranks sum over the rendezvous's TCP connections ([`TEST_COLLECTIVE`]), on the CPU.
    pub test_collective: bool,
    /// [`TEST_KILL`]: the step after which this rank kills itself, where it names this rank.
    pub kill_after: Option<u64>,
}

/// The variables a launcher sets, read through `var` (the process's environment, or a map).
pub struct LauncherEnv<'a> {
    var: &'a dyn Fn(&str) -> Option<String>,
}

/// The longest `wait` a rank may be given for the others.
pub fn rendezvous_wait(secs: u64) -> Result<Duration, JobError> {
    match secs {
        1..=MAX_WAIT_SECS => Ok(Duration::from_secs(secs)),
        _ => Err(JobError::Wait(secs)),
    }
}

fn number<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, JobError> {
    value.trim().parse().map_err(|_| JobError::NotANumber {
        name,
        value: value.to_string(),
    })
}

impl<'a> LauncherEnv<'a> {
    pub fn new(var: &'a dyn Fn(&str) -> Option<String>) -> Self {
        LauncherEnv { var }
    }

    /// A variable's value; a blank one counts as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.trim().is_empty())
    }

    /// Whether a launcher started this process (WORLD_SIZE set, even to 1).
    pub fn launched(&self) -> bool {
        self.get("WORLD_SIZE").is_some()
    }

    /// RANK's value where WORLD_SIZE is not set: worth a note, as the process trains alone.
    pub fn stray_rank(&self) -> Option<String> {
        self.get("RANK").filter(|_| !self.launched())
    }

    /// LOCAL_RANK, if set.
    pub fn local_rank(&self) -> Result<Option<usize>, JobError> {
        self.get("LOCAL_RANK").map(|v| number("LOCAL_RANK", &v)).transpose()
    }

    /// Whether the test-only collective is asked for ([`TEST_COLLECTIVE`]); any other value is an error.
    pub fn test_collective(&self) -> Result<bool, JobError> {
        match (self.var)(TEST_COLLECTIVE) {
            None => Ok(false),
            Some(v) if v == "loopback" => Ok(true),
            Some(v) => Err(JobError::TestCollective(v)),
        }
    }

    /// [`TEST_KILL`]'s step, if it names `rank`.
    fn kill_after(&self, rank: usize) -> Option<u64> {
        let v = (self.var)(TEST_KILL)?;
        let (who, step) = v.split_once(':')?;
        (who.parse::<usize>().ok()? == rank).then(|| step.parse().ok())?
    }

    /// Rank 0's `host:port` from MASTER_ADDR and MASTER_PORT.
    fn master(&self, world: usize) -> Result<String, JobError> {
        let missing = |name, what| JobError::Missing { world, name, what };
        let addr = self
            .get("MASTER_ADDR")
            .ok_or_else(|| missing("MASTER_ADDR", "the host rank 0 runs on"))?;
        let port = self
            .get("MASTER_PORT")
            .ok_or_else(|| missing("MASTER_PORT", "a free port on rank 0's host"))?;
        let port: u32 = number("MASTER_PORT", &port)?;
        let mut port = u16::try_from(port)
            .ok()
            .filter(|&p| p > 0)
            .ok_or(JobError::Port(port))?;
        // torchrun's agent may hold MASTER_PORT for its own store: then ours is the next one.
        if self
            .get("TORCHELASTIC_USE_AGENT_STORE")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            port = port.checked_add(1).ok_or(JobError::StorePort)?;
        }
        let master = match addr.contains(':') && !addr.starts_with('[') {
            true => format!("[{addr}]:{port}"), // an IPv6 address
            false => format!("{addr}:{port}"),
        };
        // A name that does not resolve would otherwise look like a rank 0 that never came up.
        std::net::ToSocketAddrs::to_socket_addrs(master.as_str()).map_err(|e| JobError::Unresolved {
            addr,
            why: e.to_string(),
        })?;
        Ok(master)
    }
}

impl Job {
    /// This process's rank, where a launcher set WORLD_SIZE above 1; `None` otherwise. With
    /// a file to meet at, MASTER_ADDR and MASTER_PORT are not needed.
    pub fn from_env(rendezvous: &Rendezvous, env: &LauncherEnv) -> Result<Option<Job>, JobError> {
        let Some(world) = env.get("WORLD_SIZE") else {
            return Ok(None);
        };
        let world: usize = number("WORLD_SIZE", &world)?;
        if world == 0 || world > MAX_RANKS {
            return Err(JobError::World(world));
        }
        if world == 1 {
            return Ok(None);
        }
        let rank = env.get("RANK").ok_or(JobError::Missing {
            world,
            name: "RANK",
            what: "this process's rank, 0 to WORLD_SIZE-1",
        })?;
        let rank: usize = number("RANK", &rank)?;
        if rank >= world {
            return Err(JobError::Rank { rank, world });
        }
        let meeting = match rendezvous {
            Rendezvous::Tcp => Meeting::Tcp(env.master(world)?),
            Rendezvous::File(path) => Meeting::File(path.clone()),
        };
        let test_collective = env.test_collective()?;
        if test_collective && matches!(meeting, Meeting::File(_)) {
            return Err(JobError::TestCollectiveByFile);
        }
        Ok(Some(Job {
            rank,
            world,
            local_rank: env.local_rank()?.unwrap_or(rank),
            meeting,
            test_collective,
            kill_after: env.kill_after(rank),
        }))
    }

    /// Meets the other ranks (waiting at most `wait` for them) and joins the job's
    /// collective: the one `device` supplies, or the test collective.
    pub fn join(&self, device: &dyn DeviceCollective, wait: Duration) -> Result<Arc<dyn Collective>, JoinError> {
        let (rank, world) = (self.rank, self.world);
        if self.test_collective {
            let Meeting::Tcp(at) = &self.meeting else {
                return Err(JobError::TestCollectiveByFile.into());
            };
            let (_, links) = rendezvous::meet(at, rank, world, || Ok(Vec::new()), wait)?;
            return Ok(Arc::new(TcpCollective::new(links, wait)));
        }
        // Before the rendezvous: a machine without one fails now, not at the others' timeout.
        device.ready().map_err(JoinError::Device)?;
        let make = || device.make_id();
        let id = match &self.meeting {
            Meeting::Tcp(at) => rendezvous::meet(at, rank, world, make, wait)?.0,
            Meeting::File(path) => meet_by_file(path, rank, world, make, wait)?,
        };
        device.join(rank, world, &id).map_err(JoinError::Device)
    }
}

/// What a device supplies to join a job (NCCL's communicator on a GPU). This layer sits
/// below the devices and names none: the caller hands its device in through this.
pub trait DeviceCollective {
    /// Fails where this device has no collective.
    fn ready(&self) -> Result<(), String>;
    /// The bytes rank 0 makes and hands every rank at the rendezvous (NCCL's unique id).
    fn make_id(&self) -> Result<Vec<u8>, String>;
    /// Joins the job `id` names as `rank` of `world`; returns once every rank has.
    fn join(&self, rank: usize, world: usize, id: &[u8]) -> Result<Arc<dyn Collective>, String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The job `pairs` (an environment) describe, meeting by `rendezvous`.
    fn job(rendezvous: &str, pairs: &[(&str, &str)]) -> Result<Option<Job>, JobError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let var = |name: &str| map.get(name).cloned();
        Job::from_env(&rendezvous.parse()?, &LauncherEnv::new(&var))
    }

    const RANK_1: [(&str, &str); 4] = [
        ("WORLD_SIZE", "4"),
        ("RANK", "1"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
    ];

    #[test]
    fn torchruns_variables_make_a_rank_whose_local_rank_defaults_to_its_rank() {
        let j = job("tcp", &RANK_1).unwrap().unwrap();
        assert_eq!((j.rank, j.world, j.local_rank), (1, 4, 1));
        assert_eq!(j.meeting, Meeting::Tcp("127.0.0.1:29500".into()));
        assert!(!j.test_collective && j.kill_after.is_none());
        let placed = job(
            "tcp",
            &[&RANK_1[..], &[("LOCAL_RANK", "0"), (TEST_KILL, "1:7")]].concat(),
        );
        let j = placed.unwrap().unwrap();
        assert_eq!((j.local_rank, j.kill_after), (0, Some(7)));
    }

    #[test]
    fn one_rank_or_no_world_size_is_no_job_and_a_file_needs_no_master() {
        assert_eq!(job("tcp", &[]), Ok(None));
        assert_eq!(job("tcp", &[("WORLD_SIZE", "1"), ("RANK", "0")]), Ok(None));
        assert_eq!(job("tcp", &[("WORLD_SIZE", " "), ("RANK", "3")]), Ok(None));
        let j = job("file:/shared/rdv", &[("WORLD_SIZE", "2"), ("RANK", "1")])
            .unwrap()
            .unwrap();
        assert_eq!(j.meeting.to_string(), "file:/shared/rdv");
    }

    #[test]
    fn agent_store_moves_the_rendezvous_to_the_next_port() {
        let store = [&RANK_1[..], &[("TORCHELASTIC_USE_AGENT_STORE", "True")]].concat();
        let j = job("tcp", &store).unwrap().unwrap();
        assert_eq!(j.meeting, Meeting::Tcp("127.0.0.1:29501".into()));
        let full = [&store[..], &[("MASTER_PORT", "65535")]].concat();
        assert_eq!(job("tcp", &full), Err(JobError::StorePort));
    }

    #[test]
    fn a_wrong_variable_is_named_with_its_value() {
        let with = |name: &str, value: &str| {
            let mut pairs: Vec<(&str, &str)> = RANK_1.iter().filter(|(k, _)| *k != name).copied().collect();
            pairs.push((name, value));
            job("tcp", &pairs).unwrap_err().to_string()
        };
        assert_eq!(
            with("RANK", "4"),
            "RANK=4 with WORLD_SIZE=4: a rank is 0 to WORLD_SIZE-1"
        );
        assert_eq!(with("WORLD_SIZE", "0"), "WORLD_SIZE=0: a job has 1 to 65536 ranks");
        assert_eq!(with("WORLD_SIZE", "x"), "WORLD_SIZE='x': expected a whole number");
        assert_eq!(with("MASTER_PORT", "70000"), "MASTER_PORT=70000: a port is 1 to 65535");
        assert_eq!(with("MASTER_PORT", "0"), "MASTER_PORT=0: a port is 1 to 65535");
        assert!(with("MASTER_ADDR", "nonexistent.invalid")
            .starts_with("MASTER_ADDR='nonexistent.invalid' does not resolve"));
        assert!(with(TEST_COLLECTIVE, "bogus").contains("its only value is loopback"));
        let no_master = job("tcp", &[("WORLD_SIZE", "2"), ("RANK", "1")]).unwrap_err();
        assert!(no_master
            .to_string()
            .starts_with("WORLD_SIZE=2 is set but MASTER_ADDR is not"));
        let by_file = job(
            "file:rdv",
            &[("WORLD_SIZE", "2"), ("RANK", "1"), (TEST_COLLECTIVE, "loopback")],
        );
        assert_eq!(by_file, Err(JobError::TestCollectiveByFile));
    }

    #[test]
    fn ranks_meet_by_tcp_or_a_named_file_and_wait_at_most_a_week() {
        assert_eq!("tcp".parse(), Ok(Rendezvous::Tcp));
        assert_eq!("file:/x".parse(), Ok(Rendezvous::File("/x".into())));
        assert_eq!("file:".parse::<Rendezvous>(), Err(JobError::Rendezvous("file:".into())));
        assert_eq!(rendezvous_wait(300), Ok(Duration::from_secs(300)));
        assert_eq!(rendezvous_wait(0), Err(JobError::Wait(0)));
        assert_eq!(
            rendezvous_wait(MAX_WAIT_SECS + 1),
            Err(JobError::Wait(MAX_WAIT_SECS + 1))
        );
    }
}
