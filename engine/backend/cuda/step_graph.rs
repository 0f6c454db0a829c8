//! Whole-step CUDA graphs (`--cuda-graph`, backend/step_graphs.rs). A training step on the
//! GPU allocates nothing new in steady state, waits for nothing, and reads everything that
//! changes between steps from the step clock (clock.rs), so it can be captured once and
//! replayed:
//!
//! 1. **Warm-up**: the first step of a shape runs eagerly with its allocations sent to a
//!    pool of the graph's own, which then caches every buffer the step uses.
//! 2. **Capture**: the next step of that shape is captured on the stream with that pool
//!    sealed (a request its cache cannot meet fails the capture rather than allocate) and
//!    the clock frozen (a value the step would write is a value the graph would bake in);
//!    the graph is then launched for that step.
//! 3. **Replay**: each later step of that shape writes the clock and launches the graph.
//!    No other allocation can take the pool's buffers, so the addresses the graph holds
//!    stay the step's own.
//!
//! A step of another size (an epoch's short last batch) runs eagerly on the backend's pool.
//! A step of the same size from another program (planned again) and anything that moves a
//! buffer the graph reads (new parameters, a new training set) retire the graph; the next
//! step warms one up again.

use super::memory::Pool;
use super::CudaBackend;
use crate::backend::step_graphs::{GraphStatus, StepGraphs};
use crate::exec::ExecError;
use crate::memory::MemoryReport;
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::CudaGraph;
use std::sync::Arc;

/// What a captured step is: its program and its rows. Equal keys launch the same work on
/// buffers of the same sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepKey {
    /// [`crate::exec::Program::id`]: a program planned again (another checkpoint policy,
    /// updates inside backward turned on) is another program.
    pub program: u64,
    pub rows: usize,
}

/// One step's graph: its pool and, once captured, the graph.
struct StepGraph {
    key: StepKey,
    pool: Arc<Pool>,
    graph: Option<CudaGraph>,
    /// The captured step's memory, as the tracker counted it: a replay allocates nothing on
    /// the host, so the tracker is told the step's peak again.
    window: MemoryReport,
}

/// The steps a model captured as CUDA graphs: the mode it was asked for, the graph of the
/// current batch size (its pool and, once captured, the graph), and what became of it.
#[derive(Default)]
pub struct CapturedSteps {
    mode: StepGraphs,
    current: Option<StepGraph>,
    status: Option<GraphStatus>,
}

impl CapturedSteps {
    pub fn set_mode(&mut self, mode: StepGraphs) {
        self.mode = mode;
        self.current = None;
        self.status = None;
    }

    pub fn status(&self) -> GraphStatus {
        match (self.mode, &self.status) {
            (StepGraphs::Off, _) => GraphStatus::Off,
            (_, Some(s)) => s.clone(),
            (_, None) => GraphStatus::Waiting,
        }
    }

    /// Buffers the graph reads moved: the next step warms up a new one.
    pub fn forget(&mut self) {
        self.current = None;
        if matches!(self.status, Some(GraphStatus::Replaying { .. })) {
            self.status = None;
        }
    }

    /// Runs one training step: `step` enqueues it eagerly (on whatever pool the backend
    /// routes to). `key` is the step's shape, or why it cannot be captured.
    pub fn run(
        &mut self,
        be: &CudaBackend,
        key: Result<StepKey, &'static str>,
        mut step: impl FnMut() -> Result<(), ExecError>,
    ) -> Result<(), ExecError> {
        if self.mode == StepGraphs::Off || matches!(self.status, Some(GraphStatus::Eager(_))) {
            return step();
        }
        let key = match key {
            Ok(key) => key,
            Err(why) => {
                self.give_up(why.to_string())?;
                return step();
            }
        };
        match self.current.take() {
            Some(g) if g.key.rows != key.rows && g.graph.is_some() => {
                // Another size (a short last batch) runs eagerly; the graph stays.
                self.current = Some(g);
                step()
            }
            Some(g) if g.key == key && g.graph.is_some() => {
                g.replay(be)?;
                if let Some(GraphStatus::Replaying { replays, .. }) = &mut self.status {
                    *replays += 1;
                }
                self.current = Some(g);
                Ok(())
            }
            Some(mut g) if g.key == key => match g.capture(be, &mut step) {
                Ok(()) => {
                    self.status = Some(GraphStatus::Replaying {
                        rows: key.rows,
                        replays: 0,
                    });
                    self.current = Some(g);
                    Ok(())
                }
                Err(why) => {
                    drop(g);
                    self.give_up(format!("the step could not be captured: {why}"))?;
                    step()
                }
            },
            _ => {
                let g = StepGraph::new(be, key);
                be.route(Some(g.pool.clone()));
                let warmed = step();
                be.route(None);
                self.current = Some(g);
                warmed
            }
        }
    }

    /// No graph for this run, for `why`: an error under `--cuda-graph on`.
    fn give_up(&mut self, why: String) -> Result<(), ExecError> {
        if self.mode == StepGraphs::On {
            return Err(ExecError::Device(format!("--cuda-graph on: {why}")));
        }
        self.current = None;
        self.status = Some(GraphStatus::Eager(why));
        Ok(())
    }
}

impl StepGraph {
    fn new(be: &CudaBackend, key: StepKey) -> Self {
        StepGraph {
            key,
            pool: be.new_pool(),
            graph: None,
            window: MemoryReport::default(),
        }
    }

    /// Captures `step` and launches the graph for it. On failure nothing ran and the stream
    /// is out of capture; the reason comes back.
    fn capture(&mut self, be: &CudaBackend, step: &mut impl FnMut() -> Result<(), ExecError>) -> Result<(), String> {
        be.route(Some(self.pool.clone()));
        self.pool.seal(true);
        be.clock.freeze(true);
        // Thread-local: a call on this thread that cannot be captured (an allocation, a
        // synchronisation, a copy from pageable memory) fails the capture, not the process.
        let mode = CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        let began = be.stream.begin_capture(mode).map_err(|e| format!("{e:?}"));
        let enqueued = began.clone().and_then(|_| step().map_err(|e| e.to_string()));
        let ended = match began {
            Ok(()) => be
                .stream
                .end_capture(CUgraphInstantiate_flags(0))
                .map_err(|e| format!("{e:?}")),
            Err(e) => Err(e),
        };
        be.clock.freeze(false);
        self.pool.seal(false);
        be.route(None);
        enqueued?;
        let graph = ended?.ok_or("the captured step is empty")?;
        graph
            .launch()
            .map_err(|e| format!("launching the captured step: {e:?}"))?;
        self.window = be.tracker().report();
        self.graph = Some(graph);
        Ok(())
    }

    fn replay(&self, be: &CudaBackend) -> Result<(), ExecError> {
        let graph = self.graph.as_ref().expect("replayed only once captured");
        graph.launch().map_err(super::driver_err)?;
        be.tracker().replay(&self.window);
        Ok(())
    }
}
