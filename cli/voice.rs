//! Whether this process speaks for its run: a process alone, or rank 0 of a data-parallel
//! job, prints and writes the run's files; the other ranks of a job (which hold the same
//! model) print nothing but their errors and write no file. Decided once, where the run is
//! placed, and handed to what prints.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Voice {
    /// Prints, and writes --save, --save-best, --plot and --metrics-out.
    Speaks,
    /// A rank past 0: its errors alone reach stderr.
    Quiet,
}

impl Voice {
    pub fn speaks(self) -> bool {
        self == Voice::Speaks
    }

    /// An informational line on stderr (which device, which file is resumed).
    pub fn note(self, line: &str) {
        if self.speaks() {
            eprintln!("{line}");
        }
    }
}
