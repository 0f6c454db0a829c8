//! An MLP trained through the library's trainer on the MNIST subset built into chainrule:
//! a model, its settings, a device, then `fit`, in a screen of code.
//!
//!     cargo run --release --example mlp

use chainrule::backend;
use chainrule::data::{mnist, Normalization};
use chainrule::io::TrainSettings;
use chainrule::nn::MlpSpec;
use chainrule::optim::{LrSchedule, OptimizerConfig, OptimizerKind};
use chainrule::train::{Control, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut train, mut test) = mnist::builtin()?;
    let normalization = Normalization::scale_only(1.0 / 255.0); // pixels into [0, 1]
    normalization.apply(&mut train.features);
    normalization.apply(&mut test.features);

    let spec = MlpSpec::new("784-256-10", "relu", 0.1)?;
    let config = TrainConfig {
        settings: TrainSettings {
            epochs: 3,
            batch_size: 128,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            seed: 0,
            augment_shift: 0,
            validation: Default::default(),
        },
        optimizer: OptimizerConfig::new(OptimizerKind::AdamW),
        checkpoint: "none".parse()?, // or "sqrt", "budget:4MiB": recompute to save memory
        loss_scaling: false,
        update_in_backward: false, // true: each update inside backward, a lower peak
    };
    let (device, _) = backend::open(backend::DeviceChoice::Auto, backend::Precision::F32, false, None)?;
    let mut trainer = Trainer::new(spec, config, normalization, &device)?;
    trainer.fit(
        &train,
        &test,
        |_, _| Control::Continue,
        |_, epoch| {
            println!(
                "epoch {}  train loss {:.4}  test accuracy {:.2}%  on {}",
                epoch.epoch,
                epoch.train_loss,
                epoch.test.accuracy * 100.0,
                device.describe()
            );
            Control::Continue
        },
    )?;
    Ok(())
}
