//! The step clock: what changes from one training step to the next (the step dropout keys
//! its masks by, the step the guard records, the first of the epoch's rows a batch gathers,
//! the learning rate), held in device memory and read there by the kernels (`ClockWord` in
//! kernels/common.cuh). Nothing else a step launches changes between steps, so a step
//! captured as a CUDA graph (step_graph.rs) replays with each step's values once the clock
//! is written before the replay.
//!
//! Every launch that reads a word first makes the clock hold its value ([`Clock::hold`]);
//! the host remembers what the device holds, so a step writes the clock once at most, and
//! stream order makes each kernel read the values of the work it belongs to. The write is a
//! one-thread kernel with the values as its arguments (kernels/clock.cu), so no host memory
//! is read after the call returns and nothing waits.

use super::driver_err;
use super::kernels::Kernels;
use super::launch::{launched, single_block};
use crate::exec::ExecError;
use crate::kernels::ClockWord;
use cudarc::driver::{CudaSlice, CudaStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const WORDS: usize = ClockWord::Words as usize;

pub struct Clock {
    device: CudaSlice<u64>,
    /// What the device holds once the work enqueued so far has run.
    held: Mutex<[u64; WORDS]>,
    /// While a step is captured no write may happen: a graph would bake the value in.
    frozen: AtomicBool,
}

/// The learning rate as the clock holds it: f32 bits (`cr_clock_lr` in kernels/common.cuh).
pub fn lr_word(lr: f64) -> u64 {
    u64::from((lr as f32).to_bits())
}

impl Clock {
    pub fn new(stream: &Arc<CudaStream>) -> Result<Self, ExecError> {
        let held = [0u64; WORDS];
        Ok(Clock {
            device: stream.clone_htod(&held).map_err(driver_err)?,
            held: Mutex::new(held),
            frozen: AtomicBool::new(false),
        })
    }

    /// Makes the device clock hold `words` for the work enqueued from now on, and returns it
    /// for a launch. While frozen (a step being captured) the clock must already hold them:
    /// a value that changed would be baked into the graph, so it fails instead.
    pub fn hold(
        &self,
        kernels: &Kernels,
        stream: &CudaStream,
        words: &[(ClockWord, u64)],
    ) -> Result<&CudaSlice<u64>, ExecError> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = *held;
        for &(w, v) in words {
            next[w as usize] = v;
        }
        if next != *held {
            if self.frozen.load(Ordering::Relaxed) {
                return Err(ExecError::Device(format!(
                    "a captured step needs step clock {:?} where the clock holds {:?}",
                    next, *held
                )));
            }
            let [dropout, guard, start, lr] = next;
            launched(kernels.clock_set(stream, single_block(1), &self.device, dropout, guard, start, lr))?;
            *held = next;
        }
        Ok(&self.device)
    }

    /// While `frozen`, [`Self::hold`] refuses to write.
    pub fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::Relaxed);
    }
}
