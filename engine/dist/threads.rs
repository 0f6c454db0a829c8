//! A collective between the threads of one process, for tests: the data-parallel step, its
//! sharding and its failure paths run on the CPU in CI with no GPU and no network. Users
//! are never offered it (the issue: no home-made all-reduce); jobs use NCCL.
//!
//! Sums are added in rank order by whichever rank arrives last, so every rank gets the same
//! bits and a run is reproducible. A rank that drops its handle (it failed, or its thread
//! panicked) ends every pending and later call on the others with [`CollectiveError::RankLeft`].

use super::collective::{Collective, CollectiveError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One thread's rank in a [`group`].
pub struct ThreadRank {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    world: usize,
    timeout: Duration,
    round: Mutex<Round>,
    done: Condvar,
}

#[derive(Default)]
struct Round {
    /// Completed calls so far: a waiting rank is done when this moves past its call.
    completed: u64,
    /// This call's contributions, by rank.
    slots: Vec<Option<Vec<f32>>>,
    /// The last completed call's sums.
    sums: Arc<Vec<f32>>,
    left: Option<usize>,
}

/// `world` handles for `world` threads, rank 0 first. A call that waits longer than
/// `timeout` for the other ranks fails, naming them.
pub fn group(world: usize, timeout: Duration) -> Vec<ThreadRank> {
    assert!(world > 0, "a group has at least one rank");
    let shared = Arc::new(Shared {
        world,
        timeout,
        round: Mutex::new(Round {
            slots: vec![None; world],
            ..Round::default()
        }),
        done: Condvar::new(),
    });
    (0..world)
        .map(|rank| ThreadRank {
            rank,
            shared: shared.clone(),
        })
        .collect()
}

impl ThreadRank {
    fn lock(&self) -> MutexGuard<'_, Round> {
        self.shared.round.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.shared.world
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError> {
        let world = self.shared.world;
        if world == 1 {
            return Ok(());
        }
        let mut round = self.lock();
        if let Some(rank) = round.left {
            return Err(CollectiveError::RankLeft { rank });
        }
        let call = round.completed;
        round.slots[self.rank] = Some(values.to_vec());
        if round.slots.iter().all(Option::is_some) {
            let slots: Vec<Vec<f32>> = round.slots.iter_mut().map(|s| s.take().expect("all arrived")).collect();
            if let Some((rank, s)) = slots.iter().enumerate().find(|(_, s)| s.len() != slots[0].len()) {
                round.left = Some(rank);
                self.shared.done.notify_all();
                return Err(CollectiveError::Mismatch {
                    rank,
                    expected: slots[0].len(),
                    got: s.len(),
                });
            }
            let mut sums = slots[0].clone();
            for s in &slots[1..] {
                for (a, b) in sums.iter_mut().zip(s) {
                    *a += b;
                }
            }
            round.sums = Arc::new(sums);
            round.completed += 1;
            self.shared.done.notify_all();
        } else {
            let deadline = Instant::now() + self.shared.timeout;
            while round.completed == call {
                if let Some(rank) = round.left {
                    return Err(CollectiveError::RankLeft { rank });
                }
                let now = Instant::now();
                if now >= deadline {
                    let missing = (0..world).filter(|&r| round.slots[r].is_none()).collect();
                    return Err(CollectiveError::Timeout {
                        missing,
                        timeout: self.shared.timeout,
                    });
                }
                round = self
                    .shared
                    .done
                    .wait_timeout(round, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        values.copy_from_slice(&round.sums);
        Ok(())
    }
}

impl Drop for ThreadRank {
    fn drop(&mut self) {
        let mut round = self.lock();
        // A rank that leaves while others wait on a call it has not joined ends that call.
        if round.slots.iter().any(Option::is_some) && round.slots[self.rank].is_none() {
            round.left.get_or_insert(self.rank);
            self.shared.done.notify_all();
        } else {
            // Any later call would wait for it forever: fail those instead.
            round.left.get_or_insert(self.rank);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_gets_the_same_sums_added_in_rank_order() {
        let ranks = group(3, Duration::from_secs(10));
        let sums: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = ranks
                .iter()
                .map(|r| {
                    s.spawn(move || {
                        let mut v = vec![r.rank() as f32 + 0.5, 1e8, -(r.rank() as f32)];
                        for _ in 0..3 {
                            r.all_reduce_sum(&mut v).unwrap();
                        }
                        v
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Three rounds of summing over three ranks: x, then 3x, then 9x of the first sums.
        let first = [0.5f32 + 1.5 + 2.5, 3e8, -3.0];
        for v in &sums {
            assert_eq!(v[0], first[0] * 9.0);
            assert_eq!(v[2], first[2] * 9.0);
            assert_eq!(v, &sums[0]);
        }
    }

    #[test]
    fn a_rank_that_leaves_ends_the_others_calls_with_its_name() {
        let mut ranks = group(3, Duration::from_secs(30));
        let leaver = ranks.pop().unwrap();
        let errors: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = ranks
                .iter()
                .map(|r| s.spawn(move || r.all_reduce_sum(&mut [1.0]).unwrap_err().to_string()))
                .collect();
            std::thread::sleep(Duration::from_millis(50));
            drop(leaver);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for e in errors {
            assert!(e.contains("rank 2 left"), "{e}");
        }
    }

    #[test]
    fn ranks_agree_only_when_every_fingerprint_is_the_same() {
        use crate::dist::Group;
        let agree = |prints: Vec<u64>| -> Vec<bool> {
            let ranks = group(prints.len(), Duration::from_secs(10));
            std::thread::scope(|s| {
                let hs: Vec<_> = ranks
                    .into_iter()
                    .zip(prints)
                    .map(|(r, f)| s.spawn(move || Group::new(std::sync::Arc::new(r)).agree(f).unwrap()))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            })
        };
        assert_eq!(agree(vec![u64::MAX, u64::MAX, u64::MAX]), [true; 3]);
        assert_eq!(agree(vec![7, 7, 8]), [false; 3]);
        // Digits that sum alike (3 + 5 = 4 + 4) still differ in their squares.
        assert_eq!(agree(vec![3, 5, 4, 4]), [false; 4]);
        assert_eq!(agree(vec![0x0123_4567_89ab_cdef]), [true]);
    }

    #[test]
    fn a_rank_that_never_arrives_times_out_naming_it() {
        let ranks = group(2, Duration::from_millis(100));
        let err = ranks[0].all_reduce_sum(&mut [1.0]).unwrap_err().to_string();
        assert!(err.contains("ranks [1] did not reach"), "{err}");
    }
}
