//! Holds the CPU's FP8 rounding (`backend::cpu::fp8_rounding::round_to`) against NVIDIA's
//! conversion: reads the table `scripts/fp8_conversion_table.cpp` writes (every 251st f32
//! bit pattern, converted to e4m3 and e5m2 by cuda_fp8.h and decoded back) and exits
//! non-zero on any difference. Run by scripts/check-kernels.sh.
//!   cargo run --release --example fp8_against_nvidia -- TABLE

use chainrule::backend::cpu::fp8_rounding::round_to;
use chainrule::plan::fp8::Fp8Format;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: fp8_against_nvidia TABLE (written by scripts/fp8_conversion_table.cpp)");
        std::process::exit(2);
    };
    let table = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2);
    });
    let values = (u32::MAX / 251) as usize + 1;
    if table.len() != values * 8 {
        eprintln!(
            "{path}: {} bytes, expected {} (two f32s for each of {values} values)",
            table.len(),
            values * 8
        );
        std::process::exit(2);
    }
    let mut differences = 0usize;
    for (k, pair) in table.chunks_exact(8).enumerate() {
        let v = f32::from_bits((k as u32).wrapping_mul(251));
        for (j, format) in [Fp8Format::E4M3, Fp8Format::E5M2].into_iter().enumerate() {
            let theirs = f32::from_le_bytes(pair[4 * j..4 * j + 4].try_into().expect("4 bytes"));
            let ours = round_to(v, format);
            if ours.to_bits() != theirs.to_bits() && !(ours.is_nan() && theirs.is_nan()) {
                differences += 1;
                if differences <= 10 {
                    eprintln!(
                        "{v:e} ({:#010x}) to {}: ours {ours:e}, NVIDIA's {theirs:e}",
                        v.to_bits(),
                        format.name()
                    );
                }
            }
        }
    }
    if differences > 0 {
        eprintln!("{differences} of {} conversions differ from NVIDIA's", 2 * values);
        std::process::exit(1);
    }
    println!(
        "FP8 rounding equals NVIDIA's cuda_fp8.h on {} conversions (e4m3 and e5m2)",
        2 * values
    );
}
