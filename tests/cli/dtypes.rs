//! The dtypes (`--dtype bf16|f16|fp8`) from the command line: each runs on the CPU as the
//! GPU's reference, and fp8 says which layers it multiplies in FP8.

use super::*;

#[test]
fn low_precision_dtypes_run_on_the_cpu_as_the_gpus_reference() {
    let d = tmp();
    for (dtype, extra) in [("bf16", ""), ("f16", "loss scale 65536"), ("fp8", "FP8 operands")] {
        let o = quick_train(d.path(), &["--dtype", dtype]);
        assert!(o.status.success(), "--dtype {dtype}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("epoch   1/1") && (out.contains(extra) || stderr(&o).contains(extra)),
            "--dtype {dtype}: {out}"
        );
    }
    assert_error(
        &quick_train(d.path(), &["--dtype", "f8"]),
        &["--dtype", "f8", "f32, bf16, f16 or fp8"],
    );
    // fp8 says which layers it multiplies in FP8: none when the batch is not a multiple of 16.
    for (batch, said) in [("100", "0 of 3 linear layers"), ("128", "2 of 3 linear layers")] {
        let args = [
            "plan",
            "--device",
            "cpu",
            "--dtype",
            "fp8",
            "--layers",
            "784-64-32-10",
            "--batch-size",
            batch,
        ];
        let o = chainrule(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(said),
            "batch {batch}: {:?}",
            o
        );
    }
}
