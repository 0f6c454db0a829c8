//! `train --devices 0,1,2,3` on one machine: starts one rank per GPU (this same command,
//! with torchrun's variables set), waits for them, and when one fails stops the others and
//! says which failed and how, so a job never hangs on a lost rank.

use crate::stop_signals::STOPPED;
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set by `--devices` in the ranks it starts: the launcher's pid. A rank ends when its
/// launcher does, however the launcher ended.
pub const LAUNCHER: &str = "CHAINRULE_LAUNCHER";

/// How long a stopped rank gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Runs one rank of this command per entry of `devices` (GPUs, or CPU processes in tests);
/// the job's exit code.
pub fn run(devices: &[usize], on_cpu: bool) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("finding this program to start its ranks")?;
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let port = free_port()?;
    let world = devices.len();
    let mut ranks: Vec<Child> = Vec::with_capacity(world);
    let errors = Arc::new(Mutex::new(Vec::<(usize, String)>::new()));
    let mut readers = Vec::new();
    for rank in 0..world {
        // Rank 0 speaks to the terminal (its progress bar too); the others' errors come
        // through here, so one said by several ranks is said once.
        let stderr = if rank == 0 { Stdio::inherit() } else { Stdio::piped() };
        let child = Command::new(&exe)
            .stderr(stderr)
            .args(&args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_WORLD_SIZE", world.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env(LAUNCHER, std::process::id().to_string())
            .spawn();
        match child {
            Ok(mut c) => {
                if let Some(pipe) = c.stderr.take() {
                    readers.push(collect_errors(rank, pipe, errors.clone()));
                }
                ranks.push(c)
            }
            Err(e) => {
                stop(&mut ranks);
                anyhow::bail!("could not start rank {rank}: {e}");
            }
        }
    }
    // A stop signal (Ctrl-C, SIGTERM, SIGHUP, SIGUSR1): the ranks agree on a step, save and
    // end; the launcher passes it on (a terminal sends Ctrl-C to them too, a scheduler
    // signalling the launcher alone does not) and waits.
    let pids: Vec<libc::pid_t> = ranks.iter().map(|c| c.id() as libc::pid_t).collect();
    let stop_signals = crate::stop_signals::SIGNALS.map(|(signal, _)| signal);
    if let Ok(mut signals) = signal_hook::iterator::Signals::new(stop_signals) {
        std::thread::spawn(move || {
            for signal in signals.forever() {
                for &pid in &pids {
                    // SAFETY: signals our own children; the launcher reaps them only after they exit.
                    unsafe { libc::kill(pid, signal) };
                }
            }
        });
    }
    let mut done = vec![None::<ExitStatus>; world];
    loop {
        for (r, child) in ranks.iter_mut().enumerate() {
            if done[r].is_none() {
                done[r] = child.try_wait().with_context(|| format!("waiting for rank {r}"))?;
            }
        }
        // A rank that ends with 130 was stopped by a signal and is saving or has saved: the
        // others are left to finish theirs.
        let failed: Vec<usize> = (0..world)
            .filter(|&r| done[r].is_some_and(|s| !s.success() && s.code() != Some(STOPPED)))
            .collect();
        if !failed.is_empty() {
            stop(&mut ranks);
            let how: Vec<String> = failed
                .iter()
                .map(|&r| {
                    let on = if on_cpu {
                        String::new()
                    } else {
                        format!(" (cuda:{})", devices[r])
                    };
                    format!("rank {r}{on} {}", describe(done[r].expect("exited")))
                })
                .collect();
            say_errors(readers, &errors);
            eprintln!("error: {}; the other ranks were stopped", how.join(", "));
            return Ok(1);
        }
        if done.iter().all(Option::is_some) {
            say_errors(readers, &errors);
            let interrupted = done.iter().any(|s| s.is_some_and(|s| s.code() == Some(STOPPED)));
            return Ok(if interrupted { STOPPED } else { 0 });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a rank's stderr: its error lines are kept for [`say_errors`], anything else is
/// passed on at once, marked with the rank.
fn collect_errors(
    rank: usize,
    pipe: impl std::io::Read + Send + 'static,
    errors: Arc<Mutex<Vec<(usize, String)>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let prefix = format!("error: rank {rank}: ");
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            match line.strip_prefix(&prefix) {
                Some(message) => errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((rank, message.to_string())),
                None => eprintln!("rank {rank}: {line}"),
            }
        }
    })
}

/// Each distinct error of the ranks past 0, once, with the ranks that said it.
fn say_errors(readers: Vec<std::thread::JoinHandle<()>>, errors: &Mutex<Vec<(usize, String)>>) {
    for r in readers {
        let _ = r.join();
    }
    let errors = errors.lock().unwrap_or_else(|e| e.into_inner());
    let mut said: Vec<&str> = Vec::new();
    for (_, message) in errors.iter() {
        if said.contains(&message.as_str()) {
            continue;
        }
        said.push(message);
        let who: Vec<String> = errors
            .iter()
            .filter(|(_, m)| m == message)
            .map(|(r, _)| r.to_string())
            .collect();
        let ranks = if who.len() == 1 { "rank" } else { "ranks" };
        eprintln!("error: {ranks} {}: {message}", who.join(", "));
    }
}

/// A port nobody listens on now, for rank 0's rendezvous.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port for the rendezvous")?;
    Ok(l.local_addr()?.port())
}

/// Ends every rank still running: SIGTERM, then SIGKILL after the grace period.
fn stop(ranks: &mut [Child]) {
    for c in ranks.iter_mut() {
        // SAFETY: signals a child of ours by its pid; a child that already exited is not yet
        // reaped, so the pid cannot have been reused.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
    }
    let deadline = Instant::now() + GRACE;
    for c in ranks.iter_mut() {
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(9)) => "was killed (SIGKILL: out of memory, or killed by hand?)".into(),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => format!("ended ({status})"),
    }
}
