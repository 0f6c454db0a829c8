//! The rendezvous through a shared file, for clusters where ranks share a filesystem but
//! cannot open a port to each other (`train --rendezvous file:PATH`): rank 0 writes the job's
//! id to PATH; every other rank reads it and leaves a mark beside it (PATH.rank-R); rank 0
//! removes the files once every mark is there, so no later job can read a stale id. A rank
//! that does not come, or a rank 0 whose file never appears, is named after the timeout.

use super::rendezvous::RendezvousError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const HEADER: &str = "chainrule rendezvous v1";

fn mark(path: &Path, rank: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".rank-{rank}"));
    PathBuf::from(name)
}

fn protocol(path: &Path, why: String) -> RendezvousError {
    RendezvousError::Protocol {
        addr: format!("file:{}", path.display()),
        why,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// [`super::rendezvous::meet`] through `path` instead of a port.
pub fn meet_by_file(
    path: &Path,
    rank: usize,
    world: usize,
    make: impl FnOnce() -> Result<Vec<u8>, String>,
    timeout: Duration,
) -> Result<Vec<u8>, RendezvousError> {
    let deadline = Instant::now() + timeout;
    if rank == 0 {
        if path.exists() {
            return Err(protocol(path, "it exists already (left by an earlier job?): remove it; rank 0 creates it and removes it once every rank has read it".into()));
        }
        let id = make().map_err(|e| protocol(path, e))?;
        let text = format!("{HEADER}\nworld {world}\nid {}\n", hex(&id));
        let tmp = mark(path, 0);
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| protocol(path, format!("writing it: {e}")))?;
        let missing = || (1..world).filter(|&r| !mark(path, r).exists()).collect::<Vec<_>>();
        loop {
            let left = missing();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = std::fs::remove_file(path);
                return Err(RendezvousError::Missing {
                    missing: left,
                    addr: format!("file:{}", path.display()),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(path);
        (1..world).for_each(|r| {
            let _ = std::fs::remove_file(mark(path, r));
        });
        return Ok(id);
    }
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let mut lines = text.lines();
            let (head, w, id) = (lines.next(), lines.next(), lines.next());
            if head != Some(HEADER) {
                return Err(protocol(path, "it is not a chainrule rendezvous file".into()));
            }
            if w != Some(format!("world {world}").as_str()) {
                return Err(protocol(
                    path,
                    format!("rank 0 wrote '{}', this rank has WORLD_SIZE={world}", w.unwrap_or("")),
                ));
            }
            let id = id
                .and_then(|l| l.strip_prefix("id "))
                .and_then(unhex)
                .ok_or_else(|| protocol(path, "its id line is damaged".into()))?;
            std::fs::write(mark(path, rank), b"")
                .map_err(|e| protocol(path, format!("leaving this rank's mark: {e}")))?;
            return Ok(id);
        }
        if Instant::now() >= deadline {
            return Err(protocol(path, format!("rank {rank} waited {} s and rank 0 never wrote it (is rank 0 running, with the same --rendezvous?)", timeout.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("chainrule-rdv-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn every_rank_gets_rank_0s_bytes_and_no_file_is_left() {
        let path = fresh("ok");
        let ids: Vec<Vec<u8>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3)
                .map(|rank| {
                    let path = &path;
                    s.spawn(move || {
                        meet_by_file(path, rank, 3, || Ok(vec![7, 0, 255]), Duration::from_secs(20)).unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| id == &[7, 0, 255]));
        assert!(!path.exists() && !mark(&path, 1).exists() && !mark(&path, 2).exists());
    }

    #[test]
    fn a_missing_rank_a_missing_rank_0_and_a_stale_file_are_named() {
        let path = fresh("missing");
        let t = Duration::from_millis(200);
        let err = meet_by_file(&path, 0, 3, || Ok(vec![1]), t).unwrap_err().to_string();
        assert!(err.contains("ranks [1, 2] did not reach rank 0 at file:"), "{err}");
        assert!(!path.exists(), "a failed rendezvous leaves no id behind");
        let err = meet_by_file(&path, 2, 3, || Ok(vec![1]), t).unwrap_err().to_string();
        assert!(err.contains("rank 2 waited 0 s and rank 0 never wrote it"), "{err}");
        std::fs::write(&path, "old").unwrap();
        let err = meet_by_file(&path, 0, 2, || Ok(vec![1]), t).unwrap_err().to_string();
        assert!(err.contains("exists already"), "{err}");
        let err = meet_by_file(&path, 1, 2, || Ok(vec![1]), t).unwrap_err().to_string();
        assert!(err.contains("not a chainrule rendezvous file"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
