//! Data-parallel training: several ranks (processes or, in tests, threads) each run the same
//! step on their share of the global batch and sum their weighted gradients with a
//! collective before the identical update.
//!
//! - [`collective`]: what a step needs from the communication layer (the trait).
//! - [`group`]: one rank's place in a job and the gradient reduction of a step.
//! - [`shard`]: which rows of a global batch a rank takes.
//! - [`rendezvous`]: how the ranks of a job find each other (torchrun's MASTER_ADDR/PORT),
//!   or [`file_rendezvous`] through a shared file.
//! - [`placement`]: which GPUs a job uses and which one each rank takes.
//! - [`job`]: a job as its launcher's environment describes it, and joining it.
//! - [`agreement`]: the check, before training, that every rank was started alike, over
//!   fingerprints made with [`stable_hash`].
//! - [`threads`], [`tcp`]: collectives between threads or processes, for tests only.

pub mod agreement;
pub mod collective;
pub mod file_rendezvous;
pub mod group;
pub mod job;
pub mod placement;
pub mod rendezvous;
pub mod shard;
pub mod stable_hash;
pub mod tcp;
pub mod threads;

pub use agreement::{agree_on_start, AgreementError, Part};
pub use collective::{Collective, CollectiveError};
pub use group::Group;
pub use job::{DeviceCollective, Job, JobError, JoinError, LauncherEnv, Meeting, Rendezvous};
pub use placement::{gpu_for_rank, DeviceList, PlacementError};
pub use shard::shard_rows;
pub use stable_hash::StableHash;
