//! What one parallel piece of work costs beyond its own time, started from a thread outside
//! rayon's pool (which sleeps until the piece is done) and from one of the pool's threads
//! (`chainrule::backend::cpu::run_on_pool_thread`, how the command line runs its
//! commands), after GAP µs of serial work, the gaps a CPU step leaves between its
//! products. Medians and 90th percentiles of 2,000 pieces, each two halves of 200 µs:
//!   cargo run --release --example pool_wakeups -- 0 20 100 500
use std::time::{Duration, Instant};

fn busy(micros: u64) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(micros) {
        std::hint::spin_loop();
    }
}

/// The overhead of each piece, in µs, sorted.
fn overheads(gap: u64) -> Vec<f64> {
    const PIECE: u64 = 200;
    let mut v: Vec<f64> = (0..2000)
        .map(|_| {
            busy(gap);
            let start = Instant::now();
            rayon::join(|| busy(PIECE), || busy(PIECE));
            start.elapsed().as_secs_f64() * 1e6 - PIECE as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn main() {
    let gaps: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("gaps in µs, as 0 20 100"))
        .collect();
    for gap in if gaps.is_empty() { vec![0, 20, 100, 500] } else { gaps } {
        let outside = overheads(gap);
        let inside = chainrule::backend::cpu::run_on_pool_thread(|| overheads(gap));
        let at = |v: &[f64], q: f64| v[((v.len() - 1) as f64 * q) as usize];
        println!(
            "gap {gap:>4} µs: outside the pool {:6.1} µs median, {:6.1} p90; on a pool thread {:6.1} median, {:6.1} p90",
            at(&outside, 0.5),
            at(&outside, 0.9),
            at(&inside, 0.5),
            at(&inside, 0.9)
        );
    }
}
