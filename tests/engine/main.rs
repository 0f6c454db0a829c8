//! The engine through its library API, one test crate (one binary to build and link) with
//! a module per concern: gradients against finite differences, autodiff's pruning, memory
//! prediction, checkpointing, fusion, training and resuming, loss scaling, and the readers
//! under random bytes.

#[path = "../common/mod.rs"]
mod common;

mod autodiff;
mod batch_norm;
mod blocks;
mod clipping;
mod data_parallel;
mod data_parallel_peaks;
mod fp8;
mod fusion;
mod fuzz_readers;
mod gradcheck;
mod loss_scaling;
mod low_precision;
mod memory;
mod nested;
mod regression;
mod remat;
mod snapshot_checks;
mod step_protocol;
mod training;
mod updates;
