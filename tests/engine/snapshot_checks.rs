//! A snapshot holding what no save writes (a non-finite weight, settings outside the
//! command line's rules, a normalization that does not fit the model) is refused when it
//! is read, naming the file and what is wrong, instead of being trained or evaluated.

use chainrule::backend;
use chainrule::data::{Dataset, Normalization};
use chainrule::io::Snapshot;
use chainrule::nn::MlpSpec;
use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::train::{Control, TrainConfig, TrainError, Trainer};
use ndarray::Array2;
use std::path::Path;

/// A change to a saved file, and what the refusal must name.
type Edit = Box<dyn Fn(&mut Snapshot)>;

/// A fresh model of `spec` with `optimizer`'s state, saved as it would be.
fn fresh(spec: MlpSpec, optimizer: OptimizerKind, normalization: Normalization) -> Snapshot {
    let config = TrainConfig::measuring(4, Default::default(), OptimizerConfig::new(optimizer), 1e-3);
    let t = Trainer::new(spec, config, normalization, &backend::cpu()).unwrap();
    t.to_snapshot().unwrap()
}

fn saved() -> Snapshot {
    let spec = MlpSpec::new("3-5-2", "relu", 0.0).unwrap();
    fresh(spec, OptimizerKind::Sgd, Normalization::standardized(&Array2::eye(3)))
}

fn record(class_examples: Vec<u64>, rows: usize) -> chainrule::data::DataRecord {
    chainrule::data::DataRecord {
        origin: chainrule::data::DataOrigin {
            rows,
            hash: "0123456789abcdef".into(),
        },
        class_examples,
        target_columns: None,
    }
}

fn reread(s: &Snapshot) -> Result<Snapshot, String> {
    Snapshot::from_bytes(Path::new("edited.safetensors"), &s.to_bytes().unwrap()).map_err(|e| e.to_string())
}

#[test]
fn a_snapshot_with_values_no_save_writes_is_refused_naming_them() {
    reread(&saved()).expect("a save reads back");
    let mut recorded = saved();
    recorded.state.data = Some(record(vec![4, 6], 10));
    assert_eq!(
        reread(&recorded).expect("a data record reads back").state.data,
        recorded.state.data
    );
    let edits: Vec<(&str, Edit)> = vec![
        (
            "layers.0.weight",
            Box::new(|s| s.tensors.get_mut("layers.0.weight").unwrap()[[1, 2]] = f32::NAN),
        ),
        (
            "layers.1.bias",
            Box::new(|s| s.tensors.get_mut("layers.1.bias").unwrap()[[0]] = f32::INFINITY),
        ),
        ("lr -1", Box::new(|s| s.settings.lr = -1.0)),
        ("metadata 'training'", Box::new(|s| s.settings.lr = f64::NAN)),
        (
            "schedule step:0:-1",
            Box::new(|s| {
                s.settings.schedule = LrSchedule::Step {
                    every_epochs: 0,
                    gamma: -1.0,
                }
            }),
        ),
        ("batch_size 0", Box::new(|s| s.settings.batch_size = 0)),
        (
            "validation fraction 1.5",
            Box::new(|s| s.settings.validation.fraction = 1.5),
        ),
        ("momentum 2", Box::new(|s| s.optimizer.momentum = 2.0)),
        ("eps", Box::new(|s| s.optimizer.eps = 0.0)),
        ("dtype 'f8'", Box::new(|s| s.state.dtype = Some("f8".into()))),
        (
            "4 means and 4 stds for a model of 3 inputs",
            Box::new(|s| {
                s.normalization.mean = Some(vec![0.0; 4]);
                s.normalization.std = Some(vec![1.0; 4]);
            }),
        ),
        (
            "a std of 0",
            Box::new(|s| s.normalization.std = Some(vec![1.0, 0.0, 1.0])),
        ),
        ("a mean without a std", Box::new(|s| s.normalization.std = None)),
        ("scale -2", Box::new(|s| s.normalization.scale = -2.0)),
        (
            "data records 3 classes' training examples, the model has 2 classes",
            Box::new(|s| s.state.data = Some(record(vec![1, 1, 1], 10))),
        ),
        (
            "data record of 12 training examples drawn from 10 rows",
            Box::new(|s| s.state.data = Some(record(vec![6, 6], 10))),
        ),
        (
            "data record of 18446744073709551616 training examples",
            Box::new(|s| s.state.data = Some(record(vec![u64::MAX, 1], 10))),
        ),
        (
            "hash \"0123456789ABCDEF\" is not 16 lowercase hex digits",
            Box::new(|s| {
                let mut r = record(vec![1, 1], 10);
                r.origin.hash = "0123456789ABCDEF".into();
                s.state.data = Some(r)
            }),
        ),
    ];
    for (needle, edit) in edits {
        let mut s = saved();
        edit(&mut s);
        let err = reread(&s).expect_err(needle);
        assert!(
            err.contains("edited.safetensors") && err.contains(needle),
            "{needle}: {err}"
        );
    }
}

/// The saved run, resumed `batch` batches into an epoch, and 8 rows: 2 batches an epoch.
fn resumed_at(batch: u64, epochs: u64) -> (Trainer, Dataset) {
    let mut s = saved();
    s.state.batch_in_epoch = batch;
    s.state.step = batch;
    let t = Trainer::from_snapshot(reread(&s).unwrap(), epochs, &backend::cpu()).unwrap();
    let data = Dataset {
        features: Array2::zeros((8, 3)),
        labels: vec![0, 1, 0, 1, 0, 1, 0, 1],
        image_shape: None,
        targets: None,
    };
    (t, data)
}

#[test]
fn a_run_saved_further_into_an_epoch_than_the_data_has_is_refused() {
    let (mut t, data) = resumed_at(100_000, 3);
    let err = t
        .fit(&data, &data, |_, _| Control::Continue, |_, _| Control::Continue)
        .unwrap_err();
    assert!(
        matches!(&err, TrainError::Data(why) if why.contains("100000 batches into an epoch of 2")),
        "{err}"
    );
}

/// A step that disagrees with the epochs and batches done (a hand-edited step or batch
/// size: the schedule would decay the learning rate elsewhere), a step past what a run
/// counts, and a negative second moment are refused.
#[test]
fn a_run_whose_step_disagrees_with_its_epochs_and_batches_is_refused() {
    let mut s = saved();
    (s.state.epoch, s.state.step) = (1, 5);
    let mut t = Trainer::from_snapshot(reread(&s).unwrap(), 3, &backend::cpu()).unwrap();
    let data = resumed_at(0, 3).1;
    let err = t
        .fit(&data, &data, |_, _| Control::Continue, |_, _| Control::Continue)
        .unwrap_err();
    assert!(
        matches!(&err, TrainError::Data(why) if why.contains("at step 5, but 1 epochs of 2 batches")),
        "{err}"
    );
    let mut s = saved();
    s.state.step = u64::MAX - 1;
    assert!(reread(&s).unwrap_err().contains("more steps than a run counts"));
    let spec = MlpSpec::new("3-5-2", "relu", 0.0).unwrap();
    let mut adam = fresh(spec, OptimizerKind::Adam, Normalization::scale_only(1.0));
    adam.tensors.get_mut("optimizer.layers.0.weight.exp_avg_sq").unwrap()[[0, 0]] = -1.0;
    let err = reread(&adam).unwrap_err();
    assert!(
        err.contains("exp_avg_sq' holds -1") && err.contains("never negative"),
        "{err}"
    );
}

#[test]
fn an_epoch_resumed_mid_way_says_where_its_figures_start() {
    let (mut t, data) = resumed_at(1, 1);
    let mut from = Vec::new();
    t.fit(
        &data,
        &data,
        |_, _| Control::Continue,
        |_, e| {
            from.push(e.from_batch);
            Control::Continue
        },
    )
    .unwrap();
    assert_eq!(from, [1], "the one epoch left started at its second batch");
}

/// The `training` metadata of a saved file, as JSON.
fn training_metadata(bytes: &[u8]) -> serde_json::Value {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    serde_json::from_str(header["__metadata__"]["training"].as_str().unwrap()).unwrap()
}

#[test]
fn a_file_saved_before_the_settings_were_one_struct_loads_and_saves_the_same_training_fields() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/safetensors/model-2-3-2.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let s = Snapshot::from_bytes(&path, &bytes).unwrap();
    let (settings, state) = (&s.settings, &s.state);
    assert_eq!(
        (settings.seed, settings.batch_size, settings.lr, settings.epochs),
        (0, 128, 0.05, 1)
    );
    assert_eq!(
        settings.schedule,
        LrSchedule::Step {
            every_epochs: 8,
            gamma: 0.5
        }
    );
    assert_eq!((state.epoch, state.batch_in_epoch, state.step), (1, 0, 1));
    // Written again, its `training` fields are the same names and values (in any order).
    assert_eq!(training_metadata(&s.to_bytes().unwrap()), training_metadata(&bytes));
}

/// A gated block net's file whose metadata was edited to another model that its tensors
/// still cover (a residual net, no norms) is refused, naming a tensor that model lacks.
#[test]
fn a_block_net_edited_into_another_model_is_refused_naming_a_stray_tensor() {
    use chainrule::nn::{BlockKind, BlockSpec, NormChoice};
    let blocks = BlockSpec {
        kind: BlockKind::Gated,
        norm: NormChoice::Rms,
        expansion: 2,
    };
    let spec = MlpSpec::new("3-4-4-2", "silu", 0.0)
        .unwrap()
        .with_blocks(Some(blocks))
        .unwrap();
    let snapshot = fresh(spec, OptimizerKind::Adam, Normalization::scale_only(1.0));
    assert!(reread(&snapshot).is_ok(), "the file as saved loads");
    let edits: [(BlockSpec, &str); 2] = [
        (
            BlockSpec {
                kind: BlockKind::Residual,
                ..blocks
            },
            "'blocks.0.fc3.",
        ),
        (
            BlockSpec {
                norm: NormChoice::None,
                ..blocks
            },
            "'blocks.0.norm.weight",
        ),
    ];
    for (edited, stray) in edits {
        let mut s = snapshot.clone();
        s.model.blocks = Some(edited);
        let err = reread(&s).unwrap_err();
        assert!(
            err.contains("edited.safetensors") && err.contains(stray) && err.contains("not part of the model"),
            "{err}"
        );
    }
}

/// BatchNorm's buffers as no save writes them: a negative running variance (which would
/// normalize by the square root of a negative number) and a batch count that is not the
/// run's step count.
#[test]
fn a_batch_norm_file_with_a_negative_variance_or_another_batch_count_is_refused() {
    use chainrule::nn::NormChoice;
    let spec = crate::batch_norm::batch_norm_net(NormChoice::Batch);
    let snapshot = fresh(spec, OptimizerKind::Sgd, Normalization::scale_only(1.0));
    assert!(reread(&snapshot).is_ok(), "the file as saved loads");
    let edits: Vec<(&str, Edit)> = vec![
        (
            "'blocks.1.norm.running_var' holds -0.5 at element 3: a mean of squares is never negative",
            Box::new(|s| s.tensors.get_mut("blocks.1.norm.running_var").unwrap()[[3]] = -0.5),
        ),
        (
            "'norm.num_batches_tracked' holds 5",
            Box::new(|s| s.tensors.get_mut("norm.num_batches_tracked").unwrap()[[]] = 5.0),
        ),
    ];
    for (needle, edit) in edits {
        let mut s = snapshot.clone();
        edit(&mut s);
        let err = reread(&s).unwrap_err();
        assert!(err.contains("edited.safetensors") && err.contains(needle), "{err}");
    }
}
