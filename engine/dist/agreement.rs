//! The start-up agreement of a job: every rank must have been started alike, or ranks
//! started by hand with different settings or files would train a wrong model without a
//! word. The caller names the parts (the trainer defines what a run's are, the CLI adds its
//! own) and hashes each ([`super::StableHash`]); the ranks agree on each part in turn, so the
//! error names the part that differs.

use super::collective::CollectiveError;
use super::group::Group;

/// One part of what every rank must hold alike.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    /// What it is, in the words the error uses ("their {what} differ").
    pub what: &'a str,
    pub fingerprint: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AgreementError {
    #[error(
        "the ranks of this job were started differently: their {what} differ; start every rank with the same command"
    )]
    Differ { what: String },
    #[error(transparent)]
    Collective(#[from] CollectiveError),
}

/// Fails unless every rank holds the same fingerprint of every part. Every rank must pass
/// the same parts in the same order: each asks the same questions, so all reach one answer.
pub fn agree_on_start(group: &Group, parts: &[Part]) -> Result<(), AgreementError> {
    for part in parts {
        if !group.agree(part.fingerprint)? {
            return Err(AgreementError::Differ {
                what: part.what.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::threads;
    use std::sync::Arc;
    use std::time::Duration;

    /// Each rank's outcome when rank `r` holds `data(r)` as its data's fingerprint.
    fn job(world: usize, data: fn(usize) -> u64) -> Vec<Result<(), String>> {
        let ranks = threads::group(world, Duration::from_secs(60));
        std::thread::scope(|s| {
            let handles: Vec<_> = ranks
                .into_iter()
                .map(|rank| {
                    s.spawn(move || {
                        let group = Group::new(Arc::new(rank));
                        let parts = [
                            Part {
                                what: "settings",
                                fingerprint: 1,
                            },
                            Part {
                                what: "data",
                                fingerprint: data(group.rank()),
                            },
                        ];
                        agree_on_start(&group, &parts).map_err(|e| e.to_string())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a rank's thread"))
                .collect()
        })
    }

    #[test]
    fn ranks_that_differ_in_one_part_are_refused_naming_it_on_every_rank() {
        for outcome in job(3, |rank| if rank == 2 { 7 } else { 5 }) {
            let e = outcome.unwrap_err();
            assert!(e.contains("their data differ"), "{e}");
        }
        assert!(job(2, |_| 5).iter().all(Result::is_ok));
    }
}
