//! How a training run ends: its last lines and exit code, and what is saved when it
//! finishes, is interrupted, or fails (a failed write, a non-finite loss, memory).

use crate::train_report::Saves;
use anyhow::bail;
use chainrule::train::out_of_memory::out_of_memory_advice;
use chainrule::train::{Control, TrainError, Trainer};
use std::path::PathBuf;

/// What to change when this run's step did not fit in `limit` bytes.
fn advice(t: &Trainer, limit: u64) -> String {
    let rows = t.train_rows.map(|rows| (rows, t.world()));
    out_of_memory_advice(&t.mlp.spec, &t.config, limit, (t.half_layout(), t.loss_scaled()), rows)
}

/// The run's last words and exit code: done, stopped (by `signal`, saved if asked), or
/// failed.
pub fn conclude(
    (saves, last_saved): (&Saves, Option<&(PathBuf, u64)>),
    trainer: &Trainer,
    result: Result<Control, TrainError>,
    signal: Option<&str>,
) -> anyhow::Result<i32> {
    match result {
        Ok(Control::Continue) => {
            // Patience running out at the last epoch ends the run where it would end anyway.
            let before_the_end = trainer.state.epoch < trainer.config.settings.epochs;
            if let (Some(best), Some(patience), true) = (
                trainer.stopped_early(),
                trainer.config.settings.validation.patience,
                before_the_end,
            ) {
                println!(
                    "stopped early after epoch {}: the validation loss has not improved for {patience} epochs (best {:.4} at epoch {})",
                    trainer.state.epoch, best.val_loss, best.epoch
                );
            }
            match &saves.every_epoch {
                Some(p) => {
                    // A run that trained no epoch here (a resumed run already stopped early)
                    // has not written --save yet: "saved" must be true.
                    if last_saved.is_none() {
                        trainer.to_snapshot()?.save(p)?;
                    }
                    println!(
                        "saved {} (epoch {}, step {})",
                        p.display(),
                        trainer.state.epoch,
                        trainer.state.step
                    );
                }
                None => match (&saves.best, trainer.state.best) {
                    (Some(p), Some(best)) if p.is_file() => println!(
                        "done; the best epoch's model is {} (epoch {}, validation loss {:.4})",
                        p.display(),
                        best.epoch,
                        best.val_loss
                    ),
                    // A resumed run none of whose epochs beat the best before it.
                    (Some(p), Some(best)) => println!(
                        "done; no epoch of this run beat epoch {}'s validation loss ({:.4}), so {} was not written (pass --save FILE to keep the model)",
                        best.epoch,
                        best.val_loss,
                        p.display()
                    ),
                    _ => println!("done (pass --save FILE to keep the model)"),
                },
            }
            Ok(0)
        }
        Ok(Control::Stop) => {
            let by = signal.map_or(String::new(), |s| format!(" by {s}"));
            let (epoch, step) = (trainer.state.epoch, trainer.state.step);
            // A stop at an epoch's last step closes that epoch first.
            let at = match trainer.state.batch_in_epoch {
                0 => format!("the end of epoch {epoch}, step {step}"),
                _ => format!("epoch {}, step {step}", epoch + 1),
            };
            match save_now(saves, trainer) {
                Ok(saved) => println!("interrupted{by} at {at}; {saved}"),
                Err(e) if matches!(e.downcast_ref(), Some(TrainError::NonFiniteParameters { .. })) => {
                    bail!("interrupted{by} at {at}; not saved: {e}; {}", kept(saves, last_saved))
                }
                Err(e) => return Err(e),
            }
            Ok(crate::stop_signals::STOPPED)
        }
        Err(TrainError::Evaluation { epoch, cause }) => {
            let cause = *cause;
            let saved = save_now(saves, trainer)?;
            let advice = cause
                .out_of_memory_limit()
                .map(|limit| format!("\n{}", advice(trainer, limit)))
                .unwrap_or_default();
            bail!("epoch {epoch} was trained; {saved}; evaluating it failed: {cause}{advice}")
        }
        Err(e @ (TrainError::NonFinite { .. } | TrainError::NonFiniteParameters { .. })) => {
            // At the first step no update has run yet: the rate is not the cause.
            let first_step = matches!(e, TrainError::NonFinite { step, .. } if step <= 1);
            let what = match (trainer.mlp.spec.loss.is_regression(), first_step) {
                (true, true) => "A regression's squared errors overflow f32 past about 1e19: scale the targets (divide them by their spread) and train again",
                (true, false) => "Try a lower --lr (or --weight-decay), or scale the targets (large targets make large gradients)",
                (false, true) => "The inputs overflowed before any update: check the data's values (or use --standardize)",
                (false, false) => "Try a lower --lr (or --weight-decay)",
            };
            bail!("{e}; stopped there; {}. {what}.", kept(saves, last_saved))
        }
        Err(e) => match e.out_of_memory_limit() {
            Some(limit) => bail!("{e}\n{}", advice(trainer, limit)),
            None => Err(e.into()),
        },
    }
}

/// A metrics, plot or save write failed mid-run (a full disk): the run stops there, and
/// what it trained is still saved to `--save` when that can be written.
pub fn stopped_by_write(
    saves: &Saves,
    trainer: &Trainer,
    write: anyhow::Error,
    last_saved: Option<&(PathBuf, u64)>,
) -> anyhow::Error {
    let at = format!("step {} ({} epochs done)", trainer.state.step, trainer.state.epoch);
    let saved =
        save_now(saves, trainer).unwrap_or_else(|again| format!("not saved ({again:#}); {}", kept(saves, last_saved)));
    anyhow::anyhow!("{write:#}; the run stopped after {at}; {saved}")
}

/// Saves the run to `--save` now, if given, and says what it did: the part of the run's
/// last line after where it stopped.
fn save_now(saves: &Saves, trainer: &Trainer) -> anyhow::Result<String> {
    match &saves.every_epoch {
        Some(p) => {
            trainer.to_snapshot()?.save(p)?;
            Ok(format!("saved {} (resume with --resume {})", p.display(), p.display()))
        }
        None => Ok("nothing saved (no --save given)".to_string()),
    }
}

/// What is left of the run on disk after a failure.
fn kept(saves: &Saves, last_saved: Option<&(PathBuf, u64)>) -> String {
    match last_saved {
        Some((p, e)) => format!("the last good model is {} (saved after epoch {e})", p.display()),
        None => match &saves.every_epoch {
            Some(p) if p.exists() => format!("{} was not overwritten", p.display()),
            _ => "nothing was saved".to_string(),
        },
    }
}
