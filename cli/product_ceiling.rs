//! `bench`'s yardstick for the step's products: the rate this machine reaches on one large
//! square product (forward and weight gradient of a SIZE x SIZE Linear at SIZE rows),
//! through the same backend and threads, measured in the same process. The step's products
//! are shaped by the model and are smaller; their share of this ceiling says how much of
//! the machine they use.

use crate::timing::Timings;
use chainrule::backend::Device;
use chainrule::memory::Bytes;

/// The products' measured ceiling.
pub struct Ceiling {
    pub size: usize,
    pub gflops: f64,
}

/// The size `--ceiling` takes by default: 2048 on the CPU (about 0.2 s a round at 180
/// GFLOP/s), 8192 on a GPU, whose products need that size to fill it.
pub fn default_size(device: &dyn Device) -> anyhow::Result<usize> {
    Ok(match device.free_memory()? {
        Some(_) => 8192,
        None => 2048,
    })
}

/// The smallest size that measures more than the cost of starting a product.
pub const SMALLEST: usize = 128;

/// Refuses a size too small to be a ceiling, or whose operands do not fit, before the
/// steps are timed.
pub fn check_size(device: &dyn Device, size: usize) -> anyhow::Result<()> {
    if size == 0 {
        return Ok(());
    }
    if size < SMALLEST {
        anyhow::bail!(
            "--ceiling {size}: products that small time the cost of starting one, not the machine's limit; give {SMALLEST} or more, or 0 to skip it"
        );
    }
    // Three operands and two products of SIZE x SIZE f32.
    let need = 20 * (size as u128) * (size as u128);
    let room = device.room()?.or(device.free_memory()?);
    if let Some(room) = room.filter(|&room| need > room as u128) {
        let need = u64::try_from(need).map_or("more than 16 EiB".to_string(), |n| Bytes(n).to_string());
        anyhow::bail!(
            "--ceiling {size}: its operands and products need {need}, and {} is free; give a smaller --ceiling, or 0 to skip it",
            Bytes(room)
        );
    }
    Ok(())
}

/// The median rate of `rounds` timed runs after one untimed, or `None` for size 0. A run
/// expected to take more than a few seconds at `rate` (FLOP/s, the step's products') is
/// announced first, with how to skip it.
pub fn measure(device: &dyn Device, size: usize, rounds: usize, rate: f64) -> anyhow::Result<Option<Ceiling>> {
    if size == 0 {
        return Ok(None);
    }
    // `bench` checked before the steps, to refuse early; the room is asked again because
    // what the steps left allocated (a GPU's held batch) counts against it now.
    check_size(device, size)?;
    let expected_s = (rounds + 1) as f64 * 4.0 * (size as f64).powi(3) / rate;
    if expected_s > 5.0 {
        eprintln!(
            "bench: timing the product ceiling, {size}x{size}x{size} products {} times (at most about {expected_s:.0} s, at the rate of the step's smaller products; --ceiling 0 skips it)",
            rounds + 1
        );
    }
    let products = device
        .bare_products(&[(size, size)], size)
        .map_err(|e| anyhow::anyhow!("--ceiling {size}: {e}"))?;
    let mut timings = Timings::after_warmup(1);
    for _ in 0..=rounds {
        timings.record(products.time()?);
    }
    // The forward product and the weight gradient, 2·SIZE³ each.
    let flops = 4.0 * (size as f64).powi(3);
    Ok(Some(Ceiling {
        size,
        gflops: flops / timings.median() / 1e9,
    }))
}
