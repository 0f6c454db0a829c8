//! Data-parallel jobs as users start them: `--devices` launching one process per entry, or
//! torchrun's variables set by hand. GPU jobs need NCCL; here the ranks are CPU processes
//! summing over loopback TCP (`CHAINRULE_TEST_COLLECTIVE=loopback`, for tests only). Losing a
//! rank: `rank_failures.rs`.

use super::*;

pub(super) const LOOPBACK: (&str, &str) = ("CHAINRULE_TEST_COLLECTIVE", "loopback");

/// `chainrule train` on `dir`'s CSV with these flags and environment.
pub(super) fn job(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let csv = dir.join("d.csv");
    if !csv.exists() {
        write_csv(&csv, 60);
    }
    let mut c = Command::new(env!("CARGO_BIN_EXE_chainrule"));
    c.args([
        "--threads",
        "1",
        "train",
        "--csv",
        p(&csv),
        "--layers",
        "3-8-3",
        "--device",
        "cpu",
    ])
    .args(["--batch-size", "16", "--dropout", "0.25"])
    .args(extra)
    .stdin(Stdio::null())
    .env_remove("WORLD_SIZE")
    .env_remove("RANK");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// torchrun's variables for `rank` of a 2-rank job whose rank 0 listens on `port`.
pub(super) fn torchrun<'a>(rank: &'a str, port: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("WORLD_SIZE", "2"),
        ("RANK", rank),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", port),
    ]
}

pub(super) fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
}

/// Every tensor a saved run holds (parameters and optimizer state), in name order.
fn params(path: &Path) -> Vec<f32> {
    let s = Snapshot::load(path).unwrap();
    s.tensors.values().flat_map(|t| t.iter().copied()).collect()
}

/// Largest difference relative to the largest parameter.
fn distance(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn a_two_rank_job_ends_where_one_process_does_and_only_rank_0_speaks_and_saves() {
    let d = tmp();
    let (one, two) = (d.path().join("one.st"), d.path().join("two.st"));
    let single = job(d.path(), &["--epochs", "3", "--save", p(&one)], &[])
        .output()
        .unwrap();
    assert!(single.status.success(), "{}", stderr(&single));
    let out = job(
        d.path(),
        &["--epochs", "3", "--save", p(&two), "--devices", "0,1"],
        &[LOOPBACK],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("epoch   3/3").count(), 1, "one rank prints: {text}");
    let dist = distance(&params(&one), &params(&two));
    // 12 steps of AdamW; the sums' order differs (measured ~1e-7).
    assert!(dist < 1e-5, "two ranks ended {dist:e} from one process");
    assert!(!d.path().join("two.st.tmp").exists());
}

#[test]
fn a_run_saved_by_two_ranks_resumes_in_one_process_and_in_three() {
    let d = tmp();
    let whole = d.path().join("whole.st");
    let out = job(d.path(), &["--epochs", "3", "--save", p(&whole)], &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for (world, devices) in [(1, None), (3, Some("0,1,2"))] {
        let part = d.path().join(format!("part{world}.st"));
        let first = job(
            d.path(),
            &["--epochs", "2", "--save", p(&part), "--devices", "0,1"],
            &[LOOPBACK],
        );
        assert!(first.clone_output().status.success());
        let mut flags = vec!["--resume", p(&part), "--epochs", "3", "--save", p(&part)];
        if let Some(list) = devices {
            flags.extend(["--devices", list]);
        }
        let out = job(d.path(), &flags, &[LOOPBACK]).output().unwrap();
        assert!(out.status.success(), "resumed at {world}: {}", stderr(&out));
        let dist = distance(&params(&whole), &params(&part));
        assert!(
            dist < 1e-5,
            "saved at 2 ranks, resumed at {world}: {dist:e} from an uninterrupted run"
        );
    }
}

trait CloneOutput {
    fn clone_output(self) -> Output;
}

impl CloneOutput for Command {
    fn clone_output(mut self) -> Output {
        self.output().unwrap()
    }
}

#[test]
fn a_rank_that_never_comes_a_bad_variable_and_cpu_ranks_without_a_collective_are_clear_errors() {
    let d = tmp();
    let port = free_port();
    let alone = job(d.path(), &["--rendezvous-timeout", "1"], &[LOOPBACK])
        .envs(torchrun("0", &port))
        .output()
        .unwrap();
    assert_error(&alone, &["ranks [1] did not reach rank 0 at 127.0.0.1:", "within 1 s"]);
    // Under torchrun's agent store (which holds MASTER_PORT), the rendezvous takes the next port.
    let store = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = store.local_addr().unwrap().port();
    let next = format!("127.0.0.1:{}", held + 1);
    let agent = job(d.path(), &["--rendezvous-timeout", "1"], &[LOOPBACK])
        .envs([("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "127.0.0.1")])
        .envs([
            ("MASTER_PORT", held.to_string()),
            ("TORCHELASTIC_USE_AGENT_STORE", "True".into()),
        ])
        .output()
        .unwrap();
    assert_error(&agent, &[&format!("did not reach rank 0 at {next} within 1 s")]);
    let bad = job(d.path(), &[], &[("WORLD_SIZE", "2"), ("RANK", "2")])
        .output()
        .unwrap();
    assert_error(&bad, &["RANK=2 with WORLD_SIZE=2"]);
    let no_master = job(d.path(), &[], &[("WORLD_SIZE", "2"), ("RANK", "1")])
        .output()
        .unwrap();
    assert_error(&no_master, &["MASTER_ADDR is not"]);
    let cpu = job(d.path(), &["--devices", "0,1"], &[]).output().unwrap();
    assert_error(&cpu, &["--devices with --device cpu", "NCCL"]);
    let bad = job(d.path(), &["--rendezvous", "file:"], &[]).output().unwrap();
    assert_error(&bad, &["--rendezvous 'file:': expected tcp or file:PATH"]);
    let shared = d.path().join("rdv");
    let by_file = ["--rendezvous", &format!("file:{}", p(&shared))];
    // A shared file needs no MASTER_ADDR; the CPU still has no collective for users.
    let cpu_file = job(d.path(), &by_file, &[("WORLD_SIZE", "2"), ("RANK", "1")])
        .output()
        .unwrap();
    assert_error(&cpu_file, &["rank 1", "data-parallel jobs run on GPUs through NCCL"]);
    let test_file = job(d.path(), &by_file, &[LOOPBACK, ("WORLD_SIZE", "2"), ("RANK", "1")])
        .output()
        .unwrap();
    assert_error(&test_file, &["use --rendezvous tcp"]);
    let env = |pairs: &[(&str, &str)]| job(d.path(), &[], pairs).output().unwrap();
    let rank0 = |k: &'static str, v: &'static str| {
        let mut pairs = vec![
            ("WORLD_SIZE", "2"),
            ("RANK", "0"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "29999"),
        ];
        pairs.retain(|(name, _)| *name != k);
        pairs.push((k, v));
        env(&pairs)
    };
    assert_error(
        &rank0("WORLD_SIZE", "18446744073709551615"),
        &["WORLD_SIZE=18446744073709551615: a job has 1 to 65536 ranks"],
    );
    assert_error(
        &rank0("MASTER_PORT", "70000"),
        &["MASTER_PORT=70000: a port is 1 to 65535"],
    );
    assert_error(&rank0("MASTER_PORT", "0"), &["MASTER_PORT=0: a port is 1 to 65535"]);
    assert_error(
        &rank0("MASTER_ADDR", "nonexistent.invalid"),
        &["MASTER_ADDR='nonexistent.invalid' does not resolve"],
    );
    let forever = job(
        d.path(),
        &["--devices", "0,1", "--rendezvous-timeout", "9223372036854775807"],
        &[LOOPBACK],
    );
    assert_error(
        &forever.clone_output(),
        &["--rendezvous-timeout 9223372036854775807: expected 1 to 604800 seconds"],
    );
    let odd = job(
        d.path(),
        &["--devices", "0,1"],
        &[("CHAINRULE_TEST_COLLECTIVE", "bogus")],
    )
    .output()
    .unwrap();
    assert_error(&odd, &["CHAINRULE_TEST_COLLECTIVE='bogus': its only value is loopback"]);
    let twice = job(d.path(), &["--devices", "1,1"], &[]).output().unwrap();
    assert_error(&twice, &["--devices", "GPU 1 is listed twice"]);
    let torchrun_cpu = job(d.path(), &[], &[]).envs(torchrun("0", &port)).output().unwrap();
    assert_error(
        &torchrun_cpu,
        &["rank 0", "data-parallel jobs run on GPUs through NCCL"],
    );
}

#[test]
fn scale_reports_the_global_batch_of_a_job_at_the_per_rank_peak() {
    let d = tmp();
    let rows = |devices: &str| -> Vec<serde_json::Value> {
        let out_dir = d.path().join(format!("scale{devices}"));
        let args = [
            "scale",
            "--depth",
            "8",
            "--width",
            "64",
            "--memory-limit",
            "16MiB",
            "--device",
            "cpu",
        ];
        let o = chainrule(
            &[
                &args[..],
                &[
                    "--ranks",
                    devices,
                    "--predict-only",
                    "--policies",
                    "none,sqrt",
                    "--out",
                    p(&out_dir),
                ],
            ]
            .concat(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&fs::read_to_string(out_dir.join("scale.json")).unwrap()).unwrap()
    };
    let (one, four) = (rows("1"), rows("4"));
    for (a, b) in one.iter().zip(&four) {
        assert_eq!(a["max_batch"], b["max_batch"], "per rank, the same as one device");
        assert_eq!(a["predicted_peak_bytes"], b["predicted_peak_bytes"]);
        assert_eq!(
            b["max_global_batch"].as_u64().unwrap(),
            4 * b["max_batch"].as_u64().unwrap()
        );
    }
}

#[test]
fn ranks_started_with_different_settings_are_refused_before_training() {
    let (d, elsewhere) = (tmp(), tmp());
    write_csv(&d.path().join("d.csv"), 60);
    // Rank 1's folder of the "data" case holds a d.csv with one value changed.
    let other = fs::read_to_string(d.path().join("d.csv")).unwrap();
    fs::write(
        elsewhere.path().join("d.csv"),
        other.replacen("\n0,5,0,0\n", "\n0,7,0,0\n", 1),
    )
    .unwrap();
    let only_one_saves = d.path().join("only.st");
    // Each rank of a pair gets its own two flags; the error names what differs.
    for (zero, one, what) in [
        (["--seed", "1"], ["--seed", "2"], "their settings"),
        (["--lr", "0.1"], ["--lr", "0.001"], "their settings"),
        // A file asked of a rank past 0 alone would silently never be written.
        (["--seed", "0"], ["--save", p(&only_one_saves)], "their output files"),
        (["--seed", "0"], ["--seed", "0"], "their data"),
    ] {
        let port = free_port();
        let spawn = |rank: &str, flags: [&str; 2]| {
            let folder = if what == "their data" && rank == "1" {
                elsewhere.path()
            } else {
                d.path()
            };
            job(folder, &flags, &[LOOPBACK])
                .envs(torchrun(rank, &port))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn("0", zero), spawn("1", one));
        for out in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
            assert_error(&out, &["the ranks of this job were started differently", what]);
        }
    }
}

#[test]
fn devices_is_a_list_of_gpus_or_all_in_every_command() {
    let d = tmp();
    let out = d.path().join("out");
    let no_gpu = chainrule::backend::gpus().is_err();
    for tool in [
        vec!["train"],
        vec!["bench"],
        vec!["remat", "--out", p(&out)],
        vec!["scale", "--memory-limit", "8MiB", "--out", p(&out)],
    ] {
        assert_error(
            &chainrule(&[&tool[..], &["--devices", "0,x"]].concat()),
            &["--devices", "expected GPU numbers such as 0,1,2,3, or all"],
        );
        if no_gpu {
            // `all` says why there is no GPU, naming the flag.
            assert_error(
                &chainrule(&[&tool[..], &["--devices", "all"]].concat()),
                &["--devices all", "no usable GPU"],
            );
        }
    }
    // A rank takes entry LOCAL_RANK of the list, here checked by CPU ranks of the test
    // collective: rank 1 of a job listing one GPU has no entry of its own.
    let port = free_port();
    let rank1 = job(d.path(), &["--devices", "0"], &[LOOPBACK])
        .envs(torchrun("1", &port))
        .env("LOCAL_RANK", "1")
        .output()
        .unwrap();
    assert_error(&rank1, &["--devices 0", "LOCAL_RANK=1 but 1 GPU(s) are listed"]);
}
