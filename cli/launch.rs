//! `train --devices 0,1,2,3` on one machine: starts one rank per GPU (this same command,
//! with torchrun's variables set), waits for them, and when one fails stops the others and
//! says which failed and how, so a job never hangs on a lost rank.

use anyhow::Context;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How long a stopped rank gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Runs one rank of this command per entry of `devices` (GPUs, or CPU processes in tests);
/// the job's exit code.
pub fn run(devices: &[usize], on_cpu: bool) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("finding this program to start its ranks")?;
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let port = free_port()?;
    let world = devices.len();
    // Ctrl-C reaches every rank (one process group): they agree on a step, save and end;
    // the launcher only waits for them.
    let _ = ctrlc::set_handler(|| {});
    let mut ranks: Vec<Child> = Vec::with_capacity(world);
    for rank in 0..world {
        let child = Command::new(&exe)
            .args(&args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_WORLD_SIZE", world.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env(crate::rank::LAUNCHER, std::process::id().to_string())
            .spawn();
        match child {
            Ok(c) => ranks.push(c),
            Err(e) => {
                stop(&mut ranks);
                anyhow::bail!("could not start rank {rank}: {e}");
            }
        }
    }
    let mut done = vec![None::<ExitStatus>; world];
    loop {
        for (r, child) in ranks.iter_mut().enumerate() {
            if done[r].is_none() {
                done[r] = child.try_wait().with_context(|| format!("waiting for rank {r}"))?;
            }
        }
        let failed: Vec<usize> = (0..world).filter(|&r| done[r].is_some_and(|s| !s.success())).collect();
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
            eprintln!("error: {}; the other ranks were stopped", how.join(", "));
            return Ok(1);
        }
        if done.iter().all(Option::is_some) {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(50));
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
