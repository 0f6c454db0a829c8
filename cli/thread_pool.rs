//! The one thread pool (rayon's global pool) that the matrix products and elementwise work
//! share, sized by `--threads`, and on whose threads each command runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Builds the pool of `threads` threads, named `chainrule-N`, each with a `stack`-byte
/// stack where the system grants one and the default stack where it does not (a limit on
/// address space). Returns whether every thread got `stack`.
///
/// The fallback is per thread, inside one build: rayon sets its global pool up once, so a
/// build refused for its stacks cannot be followed by another with smaller ones.
pub fn build(threads: usize, stack: usize) -> anyhow::Result<bool> {
    if threads == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    // More threads than this only add start-up time and contention (thousands of them
    // once made a run crawl for minutes without a word).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let most = 4 * cores;
    if threads > most {
        anyhow::bail!("--threads {threads}: at most {most} on this machine (4 per core; it has {cores})");
    }
    let shallow = Arc::new(AtomicBool::new(false));
    let any_shallow = shallow.clone();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("chainrule-{i}"))
        .spawn_handler(move |thread| spawn_with_stack_or_default(thread, stack, &shallow))
        .build_global()?;
    Ok(!any_shallow.load(Ordering::SeqCst))
}

/// Starts one of the pool's threads with a `stack`-byte stack, or the default one (noted in
/// `shallow`) when that is refused.
fn spawn_with_stack_or_default(
    thread: rayon::ThreadBuilder,
    stack: usize,
    shallow: &AtomicBool,
) -> std::io::Result<()> {
    let name = thread.name().map(str::to_owned);
    // A refused spawn drops its closure unrun; the thread's work stays here for the retry.
    let work = Arc::new(Mutex::new(Some(thread)));
    let start = |stack: Option<usize>| {
        let mut builder = std::thread::Builder::new();
        if let Some(name) = &name {
            builder = builder.name(name.clone());
        }
        if let Some(bytes) = stack {
            builder = builder.stack_size(bytes);
        }
        let work = work.clone();
        builder.spawn(move || {
            let taken = work.lock().map(|mut w| w.take());
            if let Ok(Some(thread)) = taken {
                thread.run();
            }
        })
    };
    if start(Some(stack)).is_ok() {
        return Ok(());
    }
    shallow.store(true, Ordering::SeqCst);
    start(None).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool (not the global one, which a test process can set up only once) started
    /// through the same handler.
    fn pool_with_stack(stack: usize) -> (rayon::ThreadPool, bool) {
        let shallow = Arc::new(AtomicBool::new(false));
        let any_shallow = shallow.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .thread_name(|i| format!("chainrule-{i}"))
            .spawn_handler(move |thread| spawn_with_stack_or_default(thread, stack, &shallow))
            .build()
            .expect("a pool, with default stacks if need be");
        (pool, any_shallow.load(Ordering::SeqCst))
    }

    #[test]
    fn threads_refused_their_stack_start_with_the_default_one_and_say_so() {
        // No address space holds a 4 EiB stack: every spawn with it is refused.
        let (pool, shallow) = pool_with_stack(1 << 62);
        assert!(shallow);
        let (a, b) = pool.install(|| rayon::join(|| 1 + 2, || 3 + 4));
        assert_eq!(a + b, 10);
        let name = pool.install(|| std::thread::current().name().map(str::to_owned));
        assert!(name.is_some_and(|n| n.starts_with("chainrule-")));
    }

    #[test]
    fn threads_granted_their_stack_use_it() {
        let (pool, shallow) = pool_with_stack(32 << 20);
        assert!(!shallow);
        // About 6 MiB of frames, past the 2 MiB default: only a thread with the stack asked
        // for holds them.
        fn nested(depth: usize) -> u64 {
            let frame = std::hint::black_box([depth as u8; 1024]);
            match depth {
                0 => u64::from(frame[0]),
                _ => nested(depth - 1) + u64::from(frame[1023]),
            }
        }
        assert_eq!(pool.install(|| nested(6000)), nested_sum(6000));
    }

    /// What `nested(depth)` returns: the sum of each depth's last byte.
    fn nested_sum(depth: usize) -> u64 {
        (0..=depth).map(|d| u64::from(d as u8)).sum()
    }
}
