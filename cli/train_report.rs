//! What `chainrule train` shows and keeps while it runs: the progress bar, one line per
//! epoch, `--metrics-out` JSON lines, and the `--save` after each epoch.

use crate::configuration::Configuration;
use crate::metrics::MetricsWriter;
use crate::train_args::TrainArgs;
use crate::voice::Voice;
use chainrule::backend::GraphStatus;
use chainrule::data::{DataRecord, Dataset};
use chainrule::memory::Bytes;
use chainrule::train::{Control, EpochSummary, EvalResult, StepEvent, Trainer};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Where a run writes: the model after every epoch and at its best epoch by validation
/// loss, the plot of its curves, and the metrics. Nowhere, for a process that keeps quiet.
pub struct Saves {
    pub every_epoch: Option<PathBuf>,
    pub best: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub metrics: Option<PathBuf>,
}

impl Saves {
    /// `--save`, `--save-best`, `--plot` and `--metrics-out`, written where `voice` speaks.
    pub fn of(a: &TrainArgs, voice: Voice) -> Self {
        let kept = |p: &Option<PathBuf>| p.clone().filter(|_| voice.speaks());
        Saves {
            every_epoch: kept(&a.save),
            best: kept(&a.save_best),
            plot: kept(&a.plot),
            metrics: kept(&a.metrics_out),
        }
    }
}

pub struct Reporter {
    bar: ProgressBar,
    metrics: Option<MetricsWriter>,
    saves: Saves,
    log_every: u64,
    epochs: u64,
    window_start: Instant,
    window_samples: usize,
    /// The file and epoch of the last save.
    last_saved: Option<(PathBuf, u64)>,
    /// A metrics or save failure, which stops the run and is its error.
    write_error: Option<anyhow::Error>,
    /// Every epoch record of the run so far, for the plot.
    history: Vec<serde_json::Value>,
    /// What the last line about step graphs said (off: nothing to say).
    graphs_said: GraphStatus,
    /// Steps loss scaling had skipped by the end of the last epoch.
    skipped_before: Option<u64>,
}

impl Reporter {
    /// `append`: to a resumed run's metrics; `voice`: whether the progress bar is drawn.
    pub fn new(
        saves: Saves,
        append: bool,
        log_every: u64,
        trainer: &Trainer,
        train: &Dataset,
        voice: Voice,
    ) -> anyhow::Result<Self> {
        // A resumed run's plot starts with the epochs its metrics file already has.
        // Records of epochs past the one it resumes after (a file resumed from an earlier
        // save) are not this run's.
        let done = trainer.state.epoch as f64;
        let history = match (&saves.metrics, append, &saves.plot) {
            (Some(p), true, Some(_)) => crate::train_plot::earlier_epochs(p)
                .into_iter()
                .filter(|r| r["epoch"].as_f64().is_some_and(|e| e <= done))
                .collect(),
            _ => Vec::new(),
        };
        let metrics = saves
            .metrics
            .as_ref()
            .map(|p| MetricsWriter::open(p, append))
            .transpose()?;
        let bar = ProgressBar::new(trainer.steps_per_epoch(train.len()));
        if !voice.speaks() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} batches · loss {msg} · eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Ok(Reporter {
            bar,
            metrics,
            saves,
            log_every,
            epochs: trainer.config.settings.epochs,
            window_start: Instant::now(),
            window_samples: 0,
            last_saved: None,
            write_error: None,
            history,
            graphs_said: GraphStatus::Off,
            skipped_before: trainer.state.loss_scaler.as_ref().map(|l| l.skipped),
        })
    }

    /// Where this run writes.
    pub fn saves(&self) -> &Saves {
        &self.saves
    }

    /// After each step: the bar, and every `--log-every` steps a metrics record.
    pub fn step(&mut self, ev: &StepEvent) -> Control {
        let bar = &self.bar;
        if ev.batch_in_epoch == 1 || bar.position() == 0 {
            bar.reset();
            bar.set_length(ev.batches_per_epoch);
            bar.set_prefix(format!("{}/{}", ev.epoch, self.epochs));
            bar.set_position(ev.batch_in_epoch - 1);
        }
        bar.inc(1);
        self.window_samples += ev.batch;
        if !ev.step.is_multiple_of(self.log_every) {
            return Control::Continue;
        }
        let sps = self.window_samples as f64 / self.window_start.elapsed().as_secs_f64().max(1e-9);
        // The rate in samples, as the epoch line gives it (the bar counts batches).
        let loss = ev.loss.map_or("-".to_string(), |l| format!("{l:.4}"));
        bar.set_message(format!("{loss} · {sps:.0} samples/s"));
        let rec = json!({
            "kind": "step", "epoch": ev.epoch, "step": ev.step, "loss": ev.loss, "lr": ev.lr,
            "samples_per_sec": sps, "peak_bytes": ev.memory.peak_total,
            "predicted_peak_bytes": ev.predicted.peak_total,
        });
        let control = self.write_metrics(&rec);
        self.window_start = Instant::now();
        self.window_samples = 0;
        control
    }

    /// After each epoch: its line, its metrics record, and the saves.
    pub fn epoch(&mut self, t: &Trainer, s: &EpochSummary) -> Control {
        self.bar.finish_and_clear();
        println!("{}", epoch_line(s, self.epochs));
        if let Some(warning) = self.every_step_skipped(t, s) {
            eprintln!("{warning}");
        }
        let graphs = t.step_graphs();
        if std::mem::discriminant(&graphs) != std::mem::discriminant(&self.graphs_said) {
            // Once, when it changes: captured, or why steps run eagerly.
            println!("cuda graph: {graphs}");
            self.graphs_said = graphs.clone();
        }
        let (tested, r) = (s.test.examples > 0, s.regression);
        let val = s.validation.as_ref();
        let rec = json!({
            "kind": "epoch", "epoch": s.epoch, "step": s.step, "loss": s.train_loss,
            "train_loss": s.train_loss, "train_accuracy": (!r).then_some(s.train_accuracy),
            "val_loss": val.map(|v| v.loss), "val_accuracy": val.filter(|_| !r).map(|v| v.accuracy),
            "best_epoch": t.state.best.map(|b| b.epoch),
            "test_loss": tested.then_some(s.test.loss), "test_accuracy": (tested && !r).then_some(s.test.accuracy),
            "train_rmse": r.then(|| s.train_loss.max(0.0).sqrt()),
            "val_rmse": val.filter(|_| r).map(EvalResult::rmse), "val_r2": val.and_then(|v| v.r2),
            "test_rmse": (tested && r).then(|| s.test.rmse()), "test_r2": s.test.r2.filter(|_| tested),
            "lr": s.lr, "samples_per_sec": s.samples_per_sec, "peak_bytes": s.peak_bytes,
            "predicted_peak_bytes": s.predicted_peak_bytes, "seconds": s.seconds,
            "loss_scale": s.loss_scaler.as_ref().map(|l| l.scale),
            "skipped_steps": s.loss_scaler.as_ref().map(|l| l.skipped),
            "cuda_graph": graphs.to_string(),
            "resumed_from_batch": (s.from_batch > 0).then_some(s.from_batch),
        });
        if self.write_metrics(&rec) == Control::Stop {
            return Control::Stop;
        }
        self.history.push(rec);
        if let Some(plot) = &self.saves.plot {
            if let Err(e) = crate::train_plot::write(plot, &self.history) {
                self.write_error = Some(e);
                return Control::Stop;
            }
        }
        let best = self.saves.best.as_ref().filter(|_| s.improved);
        for p in [self.saves.every_epoch.as_ref(), best].into_iter().flatten() {
            if let Err(e) = t
                .to_snapshot()
                .map_err(anyhow::Error::from)
                .and_then(|c| Ok(c.save(p)?))
            {
                self.write_error = Some(e);
                return Control::Stop;
            }
        }
        if let Some(p) = &self.saves.every_epoch {
            self.last_saved = Some((p.clone(), s.epoch));
        }
        Control::Continue
    }

    /// The run's configuration, first of its records (again at each resume, which may
    /// change `--checkpoint` or `--dtype`): `{"kind":"config", ...}`.
    /// A failed write is kept, as any metrics write's: the run stops at its next record and
    /// still saves.
    /// A warning when loss scaling skipped every step of the epoch just ended: its
    /// gradients overflowed f16 at every scale tried, and the model did not change.
    fn every_step_skipped(&mut self, t: &Trainer, s: &EpochSummary) -> Option<String> {
        let now = s.loss_scaler.as_ref()?.skipped;
        let skipped = now.saturating_sub(self.skipped_before.replace(now).unwrap_or(0));
        let steps = self.bar.length().unwrap_or(0).saturating_sub(s.from_batch);
        let targets = match t.mlp.spec.loss.is_regression() {
            true => ", or scale the targets (large targets make large gradients)",
            false => "",
        };
        (steps > 0 && skipped >= steps).then(|| {
            format!(
                "warning: loss scaling skipped all {steps} steps of epoch {} (the gradients overflowed f16 at every scale tried): the model did not change; train in --dtype bf16 or f32{targets}",
                s.epoch
            )
        })
    }

    /// The run's configuration record, with its data's record: the training examples of
    /// each class (the classes are labels 0 to its length - 1), or a regression's target
    /// columns.
    pub fn record_configuration(&mut self, configuration: &Configuration, data: Option<&DataRecord>) {
        let columns = data.and_then(|d| d.target_columns.as_deref());
        let classes = data.filter(|_| columns.is_none()).map(|d| &d.class_examples);
        let more = serde_json::json!({"kind": "config", "class_examples": classes, "target_columns": columns});
        let record = configuration.json_with(more);
        self.write_metrics(&record);
    }

    fn write_metrics(&mut self, record: &serde_json::Value) -> Control {
        let Some(m) = self.metrics.as_mut() else {
            return Control::Continue;
        };
        match m.write(record) {
            Ok(()) => Control::Continue,
            Err(e) => {
                self.write_error = Some(e);
                Control::Stop
            }
        }
    }

    /// Clears the bar; a write failure during the run is the run's error.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.bar.finish_and_clear();
        self.write_error.take().map_or(Ok(()), Err)
    }

    pub fn last_saved(&self) -> Option<&(PathBuf, u64)> {
        self.last_saved.as_ref()
    }
}

/// One line an epoch: losses and accuracies (train, validation, test), the learning rate,
/// speed, memory and time.
fn epoch_line(s: &EpochSummary, epochs: u64) -> String {
    let scaling = match &s.loss_scaler {
        Some(l) => format!("  loss scale {} ({} skipped)", l.scale, l.skipped),
        None => String::new(),
    };
    let scaling = match s.from_batch {
        0 => scaling,
        b => format!("{scaling}  (train figures from batch {} on: resumed mid-epoch)", b + 1),
    };
    let improved = if s.improved { " *" } else { "" };
    let val = match &s.validation {
        Some(v) => format!("  {}{improved}", figures("val", v, s.regression)),
        None => String::new(),
    };
    let test = match s.test.examples {
        0 => "no test split".to_string(),
        _ => figures("test", &s.test, s.regression),
    };
    let train = match s.regression {
        true => format!(
            "train loss {}  train rmse {}",
            four(s.train_loss),
            four(s.train_loss.max(0.0).sqrt())
        ),
        false => format!(
            "train loss {:.4}  train acc {:6.2}%",
            s.train_loss,
            s.train_accuracy * 100.0
        ),
    };
    format!(
        "epoch {:>3}/{epochs}  {train}{val}  {test}  lr {:.3e}  {:>8.0} samples/s  peak {} (predicted {})  {:.1}s{scaling}",
        s.epoch,
        s.lr,
        s.samples_per_sec,
        Bytes(s.peak_bytes),
        Bytes(s.predicted_peak_bytes),
        s.seconds
    )
}

/// A split's figures: loss and accuracy, or a regression's loss (the mean squared error),
/// RMSE and R².
fn figures(split: &str, e: &EvalResult, regression: bool) -> String {
    match regression {
        true => format!(
            "{split} loss {}  {split} rmse {}  {split} r2 {}",
            four(e.loss),
            four(e.rmse()),
            e.r2.map_or("n/a".to_string(), four)
        ),
        false => format!("{split} loss {:.4}  {split} acc {:6.2}%", e.loss, e.accuracy * 100.0),
    }
}

/// `v` as typed for everyday values (0.001, 1), in exponent form far from them (1e-300
/// would otherwise print 300 digits).
pub fn compact(v: f64) -> String {
    match v.abs() {
        a if a == 0.0 || !a.is_finite() || (1e-4..1e6).contains(&a) => format!("{v}"),
        _ => format!("{v:e}"),
    }
}

/// `v` to 4 decimals for everyday values, in 4-digit exponent form far from them.
pub fn four(v: f64) -> String {
    match v.abs() {
        a if a == 0.0 || !a.is_finite() || (1e-3..1e6).contains(&a) => format!("{v:.4}"),
        _ => format!("{v:.3e}"),
    }
}

/// `1 step`, `3 steps`: `n` with the noun it counts, singular for one.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
