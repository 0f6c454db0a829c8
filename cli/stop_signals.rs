//! The signals that stop a training run the way Ctrl-C does: SIGINT (Ctrl-C), SIGTERM (what
//! SLURM, Kubernetes and `kill` send to stop a job), SIGHUP (a closed terminal) and SIGUSR1
//! (what SLURM's `--signal=B:USR1@SECONDS` sends ahead of the time limit). Each only raises
//! a flag: the run finishes its step (in a data-parallel job, the ranks agree on one), saves
//! to `--save`, says where, and exits with [`STOPPED`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The exit status of a run a signal stopped: saved (when `--save` was given) and
/// resumable, distinct from errors (1) and success (0). 128 + SIGINT, as a shell reports
/// Ctrl-C, whichever signal it was.
pub const STOPPED: i32 = 130;

/// The signals that stop a run, by number and name.
pub const SIGNALS: [(i32, &str); 4] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGUSR1, "SIGUSR1"),
];

/// The last stop signal received, once one has been (installed for the run's steps).
pub struct StopSignals(Arc<AtomicUsize>);

impl StopSignals {
    /// Listens for every stop signal from now on.
    pub fn install() -> Self {
        let received = Arc::new(AtomicUsize::new(0));
        for (signal, _) in SIGNALS {
            // A signal that cannot be hooked keeps its default action: the run still ends.
            let _ = signal_hook::flag::register_usize(signal, received.clone(), signal as usize);
        }
        StopSignals(received)
    }

    /// The name of the signal that asked the run to stop, if any has.
    pub fn received(&self) -> Option<&'static str> {
        name(self.0.load(Ordering::SeqCst) as i32)
    }
}

/// A stop signal's name.
pub fn name(signal: i32) -> Option<&'static str> {
    SIGNALS.iter().find(|(s, _)| *s == signal).map(|(_, n)| *n)
}

/// Blocks the stop signals on this thread, and so on every thread started from it. `main`
/// calls it first: a signal sent to the process goes to a thread that does not block it,
/// and an idle one (`main`, waiting on the command) took it and raised the flag only when
/// next scheduled, after the command had gone on (for example, read data written after the
/// signal and trained on them).
pub fn block_on_this_thread() {
    set_mask(libc::SIG_BLOCK);
}

/// Lets this thread take the stop signals: the command's thread, the one thread that does,
/// so the flag is raised before it runs on (a read it waits in returns for the handler).
pub fn take_on_this_thread() {
    set_mask(libc::SIG_UNBLOCK);
}

fn set_mask(how: libc::c_int) {
    // SAFETY: a zeroed sigset_t is emptied by sigemptyset before use; pthread_sigmask only
    // changes this thread's mask, and a null pointer asks for no copy of the old one.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for (signal, _) in SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}
