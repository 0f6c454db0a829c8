//! A resumed run goes on with the data it was saved with. Its file records the rows its
//! examples were drawn from (count and hash); a run that held out test rows of a `--csv`
//! file and resumes on another file would test on rows it trains on, so that is refused;
//! other data is allowed (fine-tuning on a new split) but said.

use crate::data_source::Loaded;
use crate::voice::Voice;
use anyhow::bail;
use chainrule::data::DataRecord;
use chainrule::io::{Snapshot, TestSplit};

/// Checks `loaded` against what `snapshot` recorded; the record the run goes on with (made
/// from `loaded` when the file predates the record).
pub fn check(snapshot: &Snapshot, loaded: &Loaded, path: &str, voice: Voice) -> anyhow::Result<DataRecord> {
    let classes = snapshot.model.classes();
    let now = DataRecord::new(loaded.origin.clone(), &loaded.train, classes);
    let Some(saved) = &snapshot.state.data else {
        return Ok(now);
    };
    if saved.origin == now.origin {
        return Ok(saved.clone());
    }
    let differs = format!(
        "{} is not the data {path}'s run was drawn from ({} rows, hash {}; this has {} rows, hash {})",
        loaded.description, saved.origin.rows, saved.origin.hash, now.origin.rows, now.origin.hash
    );
    if let Some(TestSplit::HeldOut(_)) = snapshot.state.test_split {
        bail!("{differs}: the run held out test rows of its file, and on other rows it would test on rows it trains on; give the same --csv, or start a new run without --resume");
    }
    voice.note(&format!("note: {differs}; the run goes on with this data"));
    Ok(saved.clone())
}
