//! Running a command on one of the pool's own threads.
//!
//! A thread outside rayon's pool that starts parallel work hands it to the pool and sleeps
//! until it is done, and the pool's threads sleep between pieces of work, so each piece
//! costs two wake-ups. A CPU step starts dozens of pieces (each product's packing and each
//! block of its inner dimension, each elementwise pass): about 200 context switches a
//! step. In a virtual machine a wake-up takes from 25 µs to a few hundred, depending on
//! the host, and the step's speed swung by a fifth from one run to the next with it. On a
//! pool thread the caller never sleeps: it does its share of each piece and the others
//! take the rest, often before they have gone to sleep. About 45 context switches a step
//! (docs/performance.md, issue 27).

/// Runs `work` on a thread of rayon's global pool (here, if this already is one) and
/// returns what it returns. The pool must be built first, with the stack `work` needs: its
/// threads' stacks, not the caller's, hold `work`'s frames.
pub fn run_on_pool_thread<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return work();
    }
    // `scope` runs its body on a pool thread and blocks this one until it returns; a panic
    // in `work` is raised again here.
    rayon::scope(|_| work())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_a_pool_thread_and_its_result_comes_back() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        assert_eq!(rayon::current_thread_index(), None);
        let (index, sum) = pool.install(|| {
            // Inside `install` this already is a pool thread: the work runs here.
            let here = rayon::current_thread_index();
            run_on_pool_thread(|| (rayon::current_thread_index(), here.map(|i| i + 40)))
        });
        assert!(index.is_some());
        assert_eq!(sum, index.map(|i| i + 40));
        // From outside every pool: on a thread of the global pool.
        let index = run_on_pool_thread(rayon::current_thread_index);
        assert!(index.is_some());
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| run_on_pool_thread(|| panic!("from the pool")));
        assert!(caught.is_err());
    }
}
