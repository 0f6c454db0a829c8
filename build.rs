// CUDA kernels are compiled here once the CUDA backend lands (see kernels/README.md).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
