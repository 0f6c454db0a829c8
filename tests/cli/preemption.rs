//! Preemption as schedulers do it: SIGTERM (SLURM, Kubernetes), SIGHUP (a closed terminal)
//! and SIGUSR1 (SLURM's `--signal=B:USR1@SECONDS`) stop a run as Ctrl-C does (the step
//! finishes, the run saves, says where, and exits with 130, resumable); the same command
//! with `--resume auto` then goes on from the save and ends bitwise where a run that was
//! never stopped ends, alone and as a data-parallel job.

use super::data_parallel::{job, LOOPBACK};
use super::*;
use std::time::{Duration, Instant};

/// Sends `signal` to `child` once `save` exists (its first epoch is done) and a little
/// more has run; the run's output.
fn stopped_by(mut child: std::process::Child, save: &Path, signal: &str) -> Output {
    let started = Instant::now();
    while !save.exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no epoch finished");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before its first save");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

/// Every tensor of a saved run (weights, optimizer state), bit for bit, and its step.
fn saved_bits(path: &Path) -> (u64, Vec<(String, Vec<u32>)>) {
    let s = Snapshot::load(path).unwrap();
    let tensors = s
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.iter().map(|v| v.to_bits()).collect()));
    (s.state.step, tensors.collect())
}

fn train(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chainrule"));
    c.args(["--threads", "2", "train", "--device", "cpu"]).args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

#[test]
fn a_stopped_run_resumed_with_resume_auto_ends_bitwise_where_an_unstopped_one_does() {
    let d = tmp();
    let (reference, requeued) = (d.path().join("ref.st"), d.path().join("job.st"));
    let model = [
        "--layers",
        "784-256-10",
        "--batch-size",
        "32",
        "--epochs",
        "4",
        "--seed",
        "4",
    ];
    let o = train(&model).args(["--save", p(&reference)]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The job script: the same command for the first start and the requeue.
    let script = || {
        train(&model)
            .args(["--resume", "auto", "--save", p(&requeued)])
            .spawn()
            .unwrap()
    };
    let o = stopped_by(script(), &requeued, "TERM");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(130), "{stdout} {}", stderr(&o));
    assert!(
        stdout.contains("interrupted by SIGTERM at") && stdout.contains(p(&requeued)),
        "{stdout}"
    );
    assert!(
        stderr(&o).contains("is not there yet; starting a new run"),
        "{}",
        stderr(&o)
    );
    let stopped_at = saved_bits(&requeued).0;
    let o = script().wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("resuming {}", p(&requeued))),
        "{}",
        stderr(&o)
    );
    let (step, bits) = saved_bits(&requeued);
    assert!(stopped_at < step, "the run was not stopped before its end");
    assert!(
        (step, bits) == saved_bits(&reference),
        "the requeued run ends elsewhere"
    );
    // A requeue after the run is done trains nothing more.
    let o = script().wait_with_output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("nothing to do"));
}

#[test]
fn sighup_and_sigusr1_stop_a_run_as_ctrl_c_does() {
    for signal in ["HUP", "USR1"] {
        let d = tmp();
        let save = d.path().join("m.st");
        let child = train(&["--layers", "784-64-10", "--epochs", "1000", "--save", p(&save)])
            .spawn()
            .unwrap();
        let o = stopped_by(child, &save, signal);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(130), "SIG{signal}: {stdout} {}", stderr(&o));
        assert!(stdout.contains(&format!("interrupted by SIG{signal} at")), "{stdout}");
        assert!(Snapshot::load(&save).unwrap().state.step > 0);
    }
}

#[test]
fn a_data_parallel_job_stopped_by_sigterm_saves_once_and_resumes_bitwise() {
    let d = tmp();
    write_csv(&d.path().join("d.csv"), 6000);
    let (reference, requeued) = (d.path().join("ref.st"), d.path().join("job.st"));
    let flags = |save: &Path| -> Vec<String> {
        ["--epochs", "6", "--devices", "0,1", "--save", p(save)]
            .map(String::from)
            .to_vec()
    };
    let run = |extra: &[String]| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let mut c = job(d.path(), &extra, &[LOOPBACK]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    };
    let o = run(&flags(&reference)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut script = flags(&requeued);
    script.extend(["--resume".into(), "auto".into()]);
    // The scheduler signals the launcher, which passes it on to its ranks.
    let o = stopped_by(run(&script).spawn().unwrap(), &requeued, "TERM");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let o = run(&script).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        saved_bits(&requeued) == saved_bits(&reference),
        "the requeued job ends elsewhere"
    );
}

/// A stop signal while the data are still loading (here: a CSV from a FIFO nobody has
/// written yet) stops the run before its first step, with the same status; and a run whose
/// steps would pass what a save can count is refused before it starts.
#[test]
fn a_signal_before_the_first_step_stops_the_run_there_and_too_many_steps_are_refused() {
    let d = tmp();
    let (fifo, csv) = (d.path().join("rows.fifo"), d.path().join("rows.csv"));
    write_csv(&csv, 40);
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let child = train(&["--csv", p(&fifo), "--layers", "3-8-3", "--epochs", "5"])
        .spawn()
        .unwrap();
    // The run waits on the FIFO for its data; the signal comes, then the data. A writer
    // can open the FIFO without blocking only once the run has opened it to read, past
    // setting up its signals: on a loaded machine a fixed wait could signal it earlier.
    let mut writer = None;
    for _ in 0..1000 {
        use std::os::unix::fs::OpenOptionsExt;
        let open = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
        if let Ok(file) = open {
            writer = Some(file);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut writer = writer.expect("the run opens its CSV within 10 s");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::io::Write::write_all(&mut writer, &fs::read(&csv).unwrap()).unwrap();
    drop(writer);
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(130), "{stdout} {}", stderr(&o));
    assert!(
        stdout.contains("interrupted by SIGTERM before the first step"),
        "{stdout}"
    );
    assert!(!stdout.contains("epoch   1"), "{stdout}");
    let o = train(&[
        "--csv",
        p(&csv),
        "--layers",
        "3-8-3",
        "--batch-size",
        "1",
        "--epochs",
        "100000000",
    ])
    .output()
    .unwrap();
    assert_error(&o, &["--epochs 100000000", "more than a run counts"]);
}
