//! A resumed run goes on with the data it was saved with. Its file records the rows its
//! examples were drawn from (count and hash). A run that held out test rows of a `--csv`
//! file and resumes on another file would test on rows it trains on: refused. Data of
//! another size has no place for the run's position in its epoch: refused. Other data of
//! the same size (fine-tuning on a relabelled file) is allowed, and said.

use crate::data_source::Loaded;
use crate::voice::Voice;
use anyhow::bail;
use chainrule::io::{Snapshot, TestSplit};

/// Checks `loaded` against what `snapshot` recorded.
pub fn check(snapshot: &Snapshot, loaded: &Loaded, path: &str, voice: Voice) -> anyhow::Result<()> {
    if !snapshot.model.loss.is_regression() {
        crate::classes::two_or_more(&loaded.train, &loaded.description)?;
    }
    let now = &loaded.origin;
    let held_out = matches!(snapshot.state.test_split, Some(TestSplit::HeldOut(f)) if f > 0.0);
    let Some(saved) = snapshot.state.data.as_ref().map(|d| &d.origin) else {
        if held_out {
            voice.note(&format!(
                "warning: {path} holds no record of the data its run was drawn from (files saved before format chainrule/2 hold none), so whether {} is the file it split for test cannot be told: if it is not, the run tests on rows it trained on",
                loaded.description
            ));
        }
        return Ok(());
    };
    if saved == now {
        return Ok(());
    }
    let differs = format!(
        "{} is not the data {path}'s run was drawn from ({} rows, hash {}; this has {} rows, hash {})",
        loaded.description, saved.rows, saved.hash, now.rows, now.hash
    );
    if held_out {
        bail!("{differs}: the run held out test rows of its file, and on other rows it would test on rows it trains on; give the same --csv, or start a new run without --resume");
    }
    if saved.rows != now.rows {
        bail!("{differs}: a resumed run goes on at its place in its epoch, which data of another size does not have; give the data it was saved with, or start a new run without --resume");
    }
    voice.note(&format!("note: {differs}; the run goes on with this data"));
    Ok(())
}
