//! Data-parallel jobs losing a rank: killed through the launcher, killed under torchrun's
//! variables, the launcher itself killed, a rank lost mid-step. The job must end within
//! seconds, name the rank, and keep what every rank completed.

use super::data_parallel::{free_port, job, torchrun, LOOPBACK};
use super::*;
use std::time::{Duration, Instant};

#[test]
fn a_rank_killed_mid_job_ends_the_job_within_seconds_naming_it() {
    let d = tmp();
    let started = Instant::now();
    let out = job(
        d.path(),
        &["--epochs", "50", "--devices", "0,1,2"],
        &[LOOPBACK, ("CHAINRULE_TEST_KILL_RANK", "1:5")],
    )
    .output()
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(!out.status.success());
    // The survivors' own errors (rank 1 left) come first; the launcher's line says it all.
    let err = stderr(&out);
    let line = err.lines().find(|l| l.contains("the other ranks were stopped"));
    assert!(
        line.is_some_and(|l| l.starts_with("error: ") && l.contains("rank 1 was killed")),
        "{err}"
    );
}

#[test]
fn under_torchrun_variables_a_lost_rank_is_named_by_the_survivor() {
    let d = tmp();
    let port = free_port();
    let spawn = |rank: &'static str| {
        job(
            d.path(),
            &["--epochs", "50"],
            &[LOOPBACK, ("CHAINRULE_TEST_KILL_RANK", "1:4")],
        )
        .envs(torchrun(rank, &port))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let started = Instant::now();
    let (zero, one) = (spawn("0"), spawn("1"));
    let zero = zero.wait_with_output().unwrap();
    let one = one.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(!one.status.success());
    assert_error(&zero, &["rank 0", "rank 1 left the job"]);
}

#[test]
fn killing_the_launcher_ends_its_ranks() {
    let d = tmp();
    let mut launcher = job(d.path(), &["--epochs", "5000", "--devices", "0,1"], &[LOOPBACK])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The ranks are children of whichever of the launcher's threads started them.
    let tasks = format!("/proc/{}/task", launcher.id());
    let started = Instant::now();
    let ranks: Vec<String> = loop {
        let pids: Vec<String> = fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|t| {
                fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        if pids.len() == 2 || started.elapsed() > Duration::from_secs(20) {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ranks.len(), 2, "the launcher started its two ranks");
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    let gone = |pid: &String| {
        !Path::new(&format!("/proc/{pid}")).exists()
            || fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ranks.iter().all(gone) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ranks.iter().all(gone), "ranks {ranks:?} outlived their killed launcher");
}

#[test]
fn when_a_rank_is_lost_mid_step_rank_0_saves_the_last_step_every_rank_completed() {
    let d = tmp();
    let port = free_port();
    let saved = d.path().join("lost.st");
    let spawn = |rank: &str| {
        // Logged steps are rare here, so the loss shows in a step's own sums, not at a check.
        let flags = ["--epochs", "50", "--log-every", "1000", "--save", p(&saved)];
        job(d.path(), &flags, &[LOOPBACK, ("CHAINRULE_TEST_KILL_RANK", "1:4")])
            .envs(torchrun(rank, &port))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (zero, one) = (spawn("0"), spawn("1"));
    let (zero, one) = (zero.wait_with_output().unwrap(), one.wait_with_output().unwrap());
    assert!(!one.status.success());
    assert_error(
        &zero,
        &["rank 0", "rank 1 left the job", "the job stopped after step 4"],
    );
    assert!(
        String::from_utf8_lossy(&zero.stdout).contains("saved"),
        "{}",
        String::from_utf8_lossy(&zero.stdout)
    );
    let state = Snapshot::load(&saved).unwrap().state;
    assert_eq!(state.step, 4, "the save holds the last step both ranks completed");
}
