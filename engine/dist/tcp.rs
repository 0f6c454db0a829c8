//! A collective between processes over the rendezvous's TCP connections, for tests only:
//! it lets CI run the launcher, the rendezvous, sharding and the failure paths of a real
//! multi-process job on the CPU. Users are never offered it (jobs use NCCL); the CLI takes
//! it only under `CHAINRULE_TEST_COLLECTIVE=loopback`.
//!
//! Rank 0 receives every rank's values, adds them in rank order (as [`super::threads`]
//! does, so both give the same bits) and sends the sums back. A rank whose connection
//! closes (it died) is named; one that sends nothing within the timeout is named too.

use super::collective::{Collective, CollectiveError};
use super::rendezvous::Links;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

pub struct TcpCollective {
    rank: usize,
    world: usize,
    peers: Mutex<Vec<(usize, TcpStream)>>,
    timeout: Duration,
}

impl TcpCollective {
    /// Over `links`; a call waits at most `timeout` for a rank's values.
    pub fn new(links: Links, timeout: Duration) -> Self {
        TcpCollective {
            rank: links.rank,
            world: links.world,
            peers: Mutex::new(links.peers),
            timeout,
        }
    }
}

fn send(s: &mut TcpStream, values: &[f32]) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(8 + 4 * values.len());
    bytes.extend((values.len() as u64).to_le_bytes());
    values.iter().for_each(|v| bytes.extend(v.to_le_bytes()));
    s.write_all(&bytes)
}

/// What rank 0 sends instead of sums when a rank has failed: this, then the rank.
const FAILED: u64 = u64::MAX;

/// Values from a peer, or `Err(Some(rank))` where rank 0 says that rank failed.
fn receive(s: &mut TcpStream, timeout: Duration) -> std::io::Result<Result<Vec<f32>, usize>> {
    s.set_read_timeout(Some(timeout))?;
    let mut len = [0u8; 8];
    s.read_exact(&mut len)?;
    if u64::from_le_bytes(len) == FAILED {
        s.read_exact(&mut len)?;
        return Ok(Err(u64::from_le_bytes(len) as usize));
    }
    let mut bytes = vec![0u8; 4 * u64::from_le_bytes(len) as usize];
    s.read_exact(&mut bytes)?;
    Ok(Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()))
}

impl TcpCollective {
    fn tell_failed(peers: &mut [(usize, TcpStream)], failed: usize) {
        for (r, s) in peers.iter_mut().filter(|(r, _)| *r != failed) {
            let notice: Vec<u8> = FAILED
                .to_le_bytes()
                .into_iter()
                .chain((failed as u64).to_le_bytes())
                .collect();
            if s.write_all(&notice).is_err() {
                tracing::debug!(rank = *r, "could not tell a rank that rank {failed} failed");
            }
        }
    }

    fn failed(&self, rank: usize, e: std::io::Error) -> CollectiveError {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => CollectiveError::Timeout {
                missing: vec![rank],
                timeout: self.timeout,
            },
            _ => CollectiveError::RankLeft { rank },
        }
    }
}

impl Collective for TcpCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if self.rank != 0 {
            let (_, s) = &mut peers[0];
            send(s, values).map_err(|e| self.failed(0, e))?;
            match receive(s, self.timeout).map_err(|e| self.failed(0, e))? {
                Ok(sums) => values.copy_from_slice(&sums),
                Err(rank) => return Err(CollectiveError::RankLeft { rank }),
            }
            return Ok(());
        }
        for i in 0..peers.len() {
            let (r, s) = &mut peers[i];
            let r = *r;
            let theirs = match receive(s, self.timeout) {
                Ok(Ok(v)) if v.len() == values.len() => v,
                Ok(Ok(v)) => {
                    Self::tell_failed(&mut peers, r);
                    return Err(CollectiveError::Mismatch {
                        rank: r,
                        expected: values.len(),
                        got: v.len(),
                    });
                }
                Ok(Err(rank)) => return Err(CollectiveError::RankLeft { rank }),
                Err(e) => {
                    // The others hear which rank failed, rather than that rank 0 left.
                    Self::tell_failed(&mut peers, r);
                    return Err(self.failed(r, e));
                }
            };
            values.iter_mut().zip(&theirs).for_each(|(a, b)| *a += b);
        }
        for (r, s) in peers.iter_mut() {
            send(s, values).map_err(|e| self.failed(*r, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::rendezvous::{meet, RendezvousError};
    use super::*;

    fn free_address() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", l.local_addr().unwrap().port())
    }

    /// `world` ranks meet at a fresh address, each then runs `work` on its collective.
    fn job<R: Send>(world: usize, work: impl Fn(TcpCollective, Vec<u8>) -> R + Sync) -> Vec<R> {
        let addr = free_address();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..world)
                .map(|rank| {
                    let (addr, work) = (&addr, &work);
                    s.spawn(move || {
                        let made = || Ok(b"job id".to_vec());
                        let (id, links) = meet(addr, rank, world, made, Duration::from_secs(20)).unwrap();
                        work(TcpCollective::new(links, Duration::from_secs(20)), id)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn ranks_meet_get_rank_0s_bytes_and_sum_as_the_thread_collective_does() {
        let values = |rank: usize| vec![0.1 * rank as f32 + 0.7, 1e8 + rank as f32, -3.5];
        let sums = job(3, |c, id| {
            assert_eq!(id, b"job id");
            let mut v = values(c.rank());
            c.all_reduce_sum(&mut v).unwrap();
            c.all_reduce_sum(&mut v).unwrap();
            v
        });
        let threads = super::super::threads::group(3, Duration::from_secs(20));
        let expected: Vec<Vec<f32>> = std::thread::scope(|s| {
            let hs: Vec<_> = threads
                .iter()
                .map(|c| {
                    s.spawn(move || {
                        let mut v = values(c.rank());
                        c.all_reduce_sum(&mut v).unwrap();
                        c.all_reduce_sum(&mut v).unwrap();
                        v
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(sums, expected);
    }

    #[test]
    fn a_rank_that_dies_is_named_to_every_other_rank() {
        let outcomes = job(3, |c, _| {
            let mut v = [1.0f32];
            c.all_reduce_sum(&mut v).unwrap();
            if c.rank() == 2 {
                return String::new(); // its connection closes here
            }
            c.all_reduce_sum(&mut v).unwrap_err().to_string()
        });
        assert!(outcomes[0].contains("rank 2 left"), "{}", outcomes[0]);
        assert!(outcomes[1].contains("rank 2 left"), "{}", outcomes[1]);
    }

    #[test]
    fn connections_that_never_say_who_they_are_hold_up_no_one() {
        let addr = free_address();
        let started = std::time::Instant::now();
        let ids: Vec<Vec<u8>> = std::thread::scope(|s| {
            let (at, idle_at) = (&addr, &addr);
            let zero = s.spawn(move || {
                meet(at, 0, 2, || Ok(b"id".to_vec()), Duration::from_secs(20))
                    .unwrap()
                    .0
            });
            // Three silent clients get in first, then rank 1.
            let idle: Vec<TcpStream> = (0..3)
                .map(|_| loop {
                    if let Ok(c) = TcpStream::connect(idle_at) {
                        break c;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                })
                .collect();
            let one = s.spawn(move || meet(at, 1, 2, || Ok(vec![]), Duration::from_secs(20)).unwrap().0);
            let got = vec![zero.join().unwrap(), one.join().unwrap()];
            drop(idle);
            got
        });
        assert!(ids.iter().all(|id| id == b"id"));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_rank_that_never_comes_or_a_rank_0_never_up_is_named_after_the_timeout() {
        let addr = free_address();
        let t = Duration::from_millis(300);
        let err = meet(&addr, 0, 3, || Ok(vec![]), t).err().unwrap();
        assert!(
            matches!(&err, RendezvousError::Missing { missing, .. } if missing == &[1, 2]),
            "{err}"
        );
        let err = meet(&free_address(), 1, 2, || Ok(vec![]), t).err().unwrap();
        assert!(
            err.to_string().contains("rank 1 could not reach rank 0 at 127.0.0.1:"),
            "{err}"
        );
    }
}
