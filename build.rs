//! Kernels: compile kernels/*.cu to PTX with nvcc when one is found (NVCC, CUDA_HOME or
//! CUDA_PATH, PATH); otherwise use the committed kernels/ptx/*.ptx, after checking that
//! each was generated from the current sources. Either way the PTX lands in OUT_DIR,
//! where engine/backend/cuda/kernels.rs embeds it.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const KERNELS: &[&str] = &[
    "activation",
    "cast",
    "data",
    "dropout",
    "elementwise",
    "loss",
    "optimizer",
];
const HASH_LINE: &str = "// chainrule-source-sha256: ";

fn source_hash(name: &str) -> String {
    let mut h = Sha256::new();
    for f in ["kernels/common.cuh".to_string(), format!("kernels/{name}.cu")] {
        h.update(std::fs::read(&f).unwrap_or_else(|e| panic!("cannot read {f}: {e}")));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn find_nvcc() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NVCC") {
        return Some(PathBuf::from(p));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Ok(home) = std::env::var(var) {
            let p = Path::new(&home).join("bin/nvcc");
            if p.exists() {
                return Some(p);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nvcc"))
            .find(|p| p.exists())
    })
}

fn main() {
    for v in ["NVCC", "CUDA_HOME", "CUDA_PATH"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo:rerun-if-changed=kernels");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = find_nvcc();
    for name in KERNELS {
        let hash = source_hash(name);
        let target = out.join(format!("{name}.ptx"));
        if let Some(nvcc) = &nvcc {
            let tmp = out.join(format!("{name}.raw.ptx"));
            let status = Command::new(nvcc)
                .args(["-ptx", "-arch=compute_80", "-O3", "-Ikernels", "-o"])
                .arg(&tmp)
                .arg(format!("kernels/{name}.cu"))
                .status()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", nvcc.display()));
            assert!(status.success(), "{} failed on kernels/{name}.cu", nvcc.display());
            let body = std::fs::read_to_string(&tmp).expect("nvcc wrote its output");
            std::fs::write(&target, format!("{HASH_LINE}{hash}\n{body}")).expect("OUT_DIR is writable");
        } else {
            let committed = format!("kernels/ptx/{name}.ptx");
            let text = std::fs::read_to_string(&committed)
                .unwrap_or_else(|e| panic!("{committed}: {e}; run scripts/gen-ptx.sh"));
            let recorded = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix(HASH_LINE))
                .unwrap_or("");
            if recorded != hash {
                panic!(
                    "{committed} is stale: it was not generated from the current kernels/{name}.cu. \
                     Regenerate it with `bash scripts/install-nvcc.sh && bash scripts/gen-ptx.sh` and commit the result."
                );
            }
            std::fs::write(&target, text).expect("OUT_DIR is writable");
        }
    }
}
