//! `chainrule info`: what this build can run on.

pub fn run() -> anyhow::Result<i32> {
    println!("chainrule {}", env!("CARGO_PKG_VERSION"));
    println!("backends compiled in:");
    println!("  cpu   usable   ndarray + matrixmultiply (threaded) + rayon");
    println!("  cuda  not built (the CUDA backend is not part of this build yet)");
    println!(
        "threads: {} (rayon pool; matrix products use the same count)",
        rayon::current_num_threads()
    );
    println!(
        "cores available: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(0)
}
