//! The communication a data-parallel step needs, as a trait: NCCL implements it on GPUs; a
//! test implementation ([`super::threads`]) runs the same step between threads on the CPU.

use std::time::Duration;

/// Why a collective call failed. A rank that fails ends the job on every rank with the rank
/// named, never a hang.
#[derive(Debug, thiserror::Error)]
pub enum CollectiveError {
    #[error("rank {rank} left the job before a collective call completed")]
    RankLeft { rank: usize },
    #[error("ranks {} did not reach a collective call within {timeout:?}", ranks(missing))]
    Timeout { missing: Vec<usize>, timeout: Duration },
    #[error(
        "rank {rank} sent {got} values to a collective call, rank 0 sent {expected}: the ranks run different steps"
    )]
    Mismatch { rank: usize, expected: usize, got: usize },
    #[error("{0}")]
    Failed(String),
}

/// A list of ranks for a message: all of a short one, the first few of a long one.
pub fn ranks(list: &[usize]) -> String {
    match list.len() {
        0..=8 => format!("{list:?}"),
        n => format!("{:?} and {} more", &list[..8], n - 8),
    }
}

/// One rank's handle on a job of [`Collective::world`] ranks.
pub trait Collective: Send + Sync {
    /// This rank, 0-based.
    fn rank(&self) -> usize;
    /// How many ranks the job has.
    fn world(&self) -> usize;
    /// Sums `values` element by element over every rank, in place: every rank ends with the
    /// same sums. A one-rank job leaves `values` as they are.
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError>;
    /// This collective as `Any`, so a device can find its own kind under the trait (the CUDA
    /// backend its NCCL communicator, to sum gradients where they live).
    fn as_any(&self) -> &dyn std::any::Any;
}
