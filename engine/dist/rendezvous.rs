//! How the ranks of a job find each other, torchrun's way: rank 0 listens at
//! `MASTER_ADDR:MASTER_PORT`, every other rank connects (retrying until the timeout) and says
//! who it is, and once all have come rank 0 hands each the same bytes (the NCCL id). A rank
//! that does not come, or a rank 0 that cannot be reached, is an error naming it and the
//! address after the timeout, never a hang.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const MAGIC: &[u8; 4] = b"CRv1";
/// How long rank 0 waits for a new connection to say which rank it is.
const HELLO_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RendezvousError {
    #[error("ranks {} did not reach rank 0 at {addr} within {secs} s (were they started, with the same MASTER_ADDR and MASTER_PORT?)", super::collective::ranks(missing))]
    Missing {
        missing: Vec<usize>,
        addr: String,
        secs: u64,
    },
    #[error("rank {rank} could not reach rank 0 at {addr} within {secs} s (is rank 0 running, and MASTER_ADDR/MASTER_PORT right?)")]
    Unreachable { rank: usize, addr: String, secs: u64 },
    #[error("rank 0 could not listen at {addr}: {why}")]
    Listen { addr: String, why: String },
    #[error("the rendezvous at {addr} failed: {why}")]
    Protocol { addr: String, why: String },
}

/// A rank's open connections after the rendezvous: rank 0 holds one to every other rank
/// (in rank order), the others one to rank 0. The test collective runs over them.
pub struct Links {
    pub rank: usize,
    pub world: usize,
    pub peers: Vec<(usize, TcpStream)>,
}

/// Meets the other ranks at `addr` ("host:port"). Rank 0 makes the shared bytes with `make`
/// (before anyone connects, so a failure there ends the job at once) and every rank returns
/// them.
pub fn meet(
    addr: &str,
    rank: usize,
    world: usize,
    make: impl FnOnce() -> Result<Vec<u8>, String>,
    timeout: Duration,
) -> Result<(Vec<u8>, Links), RendezvousError> {
    let deadline = Instant::now() + timeout;
    let protocol = |why: String| RendezvousError::Protocol {
        addr: addr.to_string(),
        why,
    };
    if rank == 0 {
        let payload = make().map_err(protocol)?;
        let peers = gather(addr, world, deadline, timeout)?;
        let mut links = Vec::with_capacity(peers.len());
        for (r, mut s) in peers {
            s.write_all(&(payload.len() as u32).to_le_bytes())
                .and_then(|_| s.write_all(&payload))
                .map_err(|e| protocol(format!("sending to rank {r}: {e}")))?;
            links.push((r, s));
        }
        return Ok((
            payload,
            Links {
                rank,
                world,
                peers: links,
            },
        ));
    }
    let mut s = connect(addr, rank, deadline, timeout)?;
    let mut hello = MAGIC.to_vec();
    hello.extend((rank as u32).to_le_bytes());
    hello.extend((world as u32).to_le_bytes());
    s.write_all(&hello)
        .map_err(|e| protocol(format!("greeting rank 0: {e}")))?;
    s.set_read_timeout(Some(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
    ))
    .map_err(|e| protocol(e.to_string()))?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(|e| {
        protocol(format!(
            "waiting for rank 0 to hand out the job's id: {e} (did rank 0 fail, or had another process joined as rank {rank}?)"
        ))
    })?;
    let mut payload = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut payload)
        .map_err(|e| protocol(format!("reading the job's id: {e}")))?;
    s.set_read_timeout(None).map_err(|e| protocol(e.to_string()))?;
    Ok((
        payload,
        Links {
            rank,
            world,
            peers: vec![(0, s)],
        },
    ))
}

/// Rank 0: every other rank's connection, in rank order.
fn gather(
    addr: &str,
    world: usize,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<(usize, TcpStream)>, RendezvousError> {
    let listener = listen(addr)?;
    let protocol = |why: String| RendezvousError::Protocol {
        addr: addr.to_string(),
        why,
    };
    listener.set_nonblocking(true).map_err(|e| protocol(e.to_string()))?;
    let mut peers: Vec<Option<TcpStream>> = (0..world).map(|_| None).collect();
    // Connections that have not said who they are yet: none may hold up the others (an idle
    // client is dropped after HELLO_WAIT; anything else is read as it arrives).
    let mut pending: Vec<(TcpStream, Instant)> = Vec::new();
    while peers[1..].iter().any(Option::is_none) {
        let mut busy = false;
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(true).map_err(|e| protocol(e.to_string()))?;
                pending.push((s, Instant::now()));
                busy = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(protocol(e.to_string())),
        }
        let mut still = Vec::with_capacity(pending.len());
        for (mut s, since) in pending.drain(..) {
            let mut hello = [0u8; 12];
            match s.peek(&mut hello) {
                Ok(12) => {
                    busy = true;
                    s.read_exact(&mut hello).map_err(|e| protocol(e.to_string()))?;
                    if &hello[..4] != MAGIC {
                        continue; // not a rank of ours (a port scanner, a stale client)
                    }
                    let r = u32::from_le_bytes(hello[4..8].try_into().expect("4 bytes")) as usize;
                    let w = u32::from_le_bytes(hello[8..12].try_into().expect("4 bytes")) as usize;
                    if w != world || r == 0 || r >= world {
                        return Err(protocol(format!(
                            "a rank said it is rank {r} of {w}; rank 0 is of {world}"
                        )));
                    }
                    if peers[r].is_some() {
                        return Err(protocol(format!("two processes said they are rank {r}")));
                    }
                    s.set_nonblocking(false).map_err(|e| protocol(e.to_string()))?;
                    peers[r] = Some(s);
                }
                Ok(0) => {} // closed before saying anything
                Ok(_) | Err(_) if since.elapsed() < HELLO_WAIT => still.push((s, since)),
                _ => {} // silent too long, or broken: dropped
            }
        }
        pending = still;
        if Instant::now() >= deadline {
            return Err(RendezvousError::Missing {
                missing: (1..world).filter(|&r| peers[r].is_none()).collect(),
                addr: addr.to_string(),
                secs: timeout.as_secs(),
            });
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(peers
        .into_iter()
        .enumerate()
        .filter_map(|(r, s)| Some((r, s?)))
        .collect())
}

/// Rank 0 listens where the others were told to connect; a MASTER_ADDR naming this host by
/// another interface's address falls back to every interface.
fn listen(addr: &str) -> Result<TcpListener, RendezvousError> {
    let port = addr.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
    TcpListener::bind(addr)
        .or_else(|_| TcpListener::bind(format!("0.0.0.0:{port}")))
        .map_err(|e| RendezvousError::Listen {
            addr: addr.to_string(),
            why: e.to_string(),
        })
}

/// A non-zero rank: connects to rank 0, retrying while it is not up yet.
fn connect(addr: &str, rank: usize, deadline: Instant, timeout: Duration) -> Result<TcpStream, RendezvousError> {
    loop {
        if let Ok(s) = TcpStream::connect(addr) {
            return Ok(s);
        }
        if Instant::now() >= deadline {
            return Err(RendezvousError::Unreachable {
                rank,
                addr: addr.to_string(),
                secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
