//! `chainrule info`: what this build can run on.

use chainrule::backend;
use chainrule::memory::Bytes;

pub fn run() -> anyhow::Result<i32> {
    println!("chainrule {}", env!("CARGO_PKG_VERSION"));
    println!("backends compiled in: cpu, cuda");
    println!(
        "saved models: writes {}, reads {}",
        chainrule::io::snapshot::FORMAT,
        chainrule::io::snapshot::READABLE_FORMATS.join(", ")
    );
    println!(
        "  cpu   usable: {} threads (rayon pool and matrix products), {} cores available",
        rayon::current_num_threads(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    match backend::gpus() {
        Ok(gpus) => {
            for g in gpus {
                let version = |v: i32| format!("{}.{}", v / 1000, (v % 1000) / 10);
                println!(
                    "  cuda:{}  usable: {} · compute capability {}.{} · {} free of {} · driver {} · cuBLAS {} · cuBLASLt {}",
                    g.ordinal,
                    g.name,
                    g.compute_capability.0,
                    g.compute_capability.1,
                    Bytes(g.free_bytes as u64),
                    Bytes(g.total_bytes as u64),
                    version(g.driver_version),
                    g.cublas_version
                        .map_or("unavailable".into(), |v| format!("{} ({v})", v / 10000 * 10000 / 10000)),
                    g.cublaslt_version.map_or("missing (Linear layers run unfused)".into(), |v| v.to_string()),
                );
            }
        }
        Err(why) => println!("  cuda  not usable: {why}"),
    }
    Ok(0)
}
