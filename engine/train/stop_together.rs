//! How the ranks of a data-parallel job stop: together. They agree whether to stop (any
//! rank's Ctrl-C stops all) at steps whose loss is read anyway, the same steps on every
//! rank, so other steps wait for nothing. A lost rank ends the run as Ctrl-C does, so rank 0
//! saves the last step every rank completed, and the loss is the run's error after that.

use super::{Control, TrainError};
use crate::dist::{CollectiveError, Group};
use crate::exec::ExecError;
use std::cell::Cell;

/// One process's side of stopping together: its job's group (none alone) and the lost
/// rank's error, once one is lost.
pub struct StopTogether {
    group: Option<Group>,
    lost: Cell<Option<CollectiveError>>,
}

impl StopTogether {
    pub fn new(group: Option<Group>) -> Self {
        StopTogether {
            group,
            lost: Cell::new(None),
        }
    }

    /// Whether to stop after a step, where this process alone would stop if `interrupted`;
    /// `logged`: the step's loss was read. A rank found lost stops the run.
    pub fn after_step(&self, interrupted: bool, logged: bool) -> bool {
        let Some(group) = &self.group else {
            return interrupted;
        };
        if !logged {
            return false;
        }
        match group.reduce_sum(f32::from(u8::from(interrupted))) {
            Ok(stops) => stops > 0.0,
            Err(e) => {
                self.lost.set(Some(e));
                true
            }
        }
    }

    /// The run's result, where a step that failed because a rank was lost reads as a stop, so
    /// rank 0 saves (the failed step changed nothing: its sums come before its update). Not
    /// with updates `inside_backward`, where some parameters may have been updated before
    /// the failure: that run ends unsaved.
    pub fn outcome(&self, result: Result<Control, TrainError>, inside_backward: bool) -> Result<Control, TrainError> {
        match result {
            Err(TrainError::Exec(ExecError::Collective(e))) if !inside_backward => {
                self.lost.set(Some(e));
                Ok(Control::Stop)
            }
            other => other,
        }
    }

    /// The lost rank's error, if one was lost: the run's error once it has saved.
    pub fn lost(self) -> Option<CollectiveError> {
        self.lost.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::threads;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn alone_an_interrupt_stops_and_a_lost_rank_mid_step_stops_to_save() {
        let alone = StopTogether::new(None);
        assert!(alone.after_step(true, false) && !alone.after_step(false, true));
        let lost = || {
            Err(TrainError::Exec(ExecError::Collective(CollectiveError::RankLeft {
                rank: 1,
            })))
        };
        assert!(matches!(alone.outcome(lost(), false), Ok(Control::Stop)));
        assert!(matches!(alone.lost(), Some(CollectiveError::RankLeft { rank: 1 })));
        // Updates inside backward may have changed some parameters: the error stands.
        let inside = StopTogether::new(None);
        assert!(inside.outcome(lost(), true).is_err() && inside.lost().is_none());
    }

    #[test]
    fn one_ranks_interrupt_stops_every_rank_at_a_logged_step() {
        let ranks = threads::group(2, Duration::from_secs(60));
        let stops: Vec<(bool, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = ranks
                .into_iter()
                .map(|rank| {
                    s.spawn(move || {
                        let stop = StopTogether::new(Some(Group::new(Arc::new(rank))));
                        let interrupted = stop.group.as_ref().is_some_and(|g| g.rank() == 1);
                        (stop.after_step(interrupted, false), stop.after_step(interrupted, true))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a rank's thread"))
                .collect()
        });
        assert_eq!(stops, [(false, true), (false, true)]);
    }
}
