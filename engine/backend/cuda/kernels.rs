//! Our kernels, compiled to PTX by build.rs and embedded in the binary.

use cudarc::driver::{CudaContext, CudaFunction, DriverError};
use cudarc::nvrtc::Ptx;
use std::sync::Arc;

const PTX: &[(&str, &str)] = &[
    ("activation", include_str!(concat!(env!("OUT_DIR"), "/activation.ptx"))),
    ("cast", include_str!(concat!(env!("OUT_DIR"), "/cast.ptx"))),
    ("data", include_str!(concat!(env!("OUT_DIR"), "/data.ptx"))),
    ("dropout", include_str!(concat!(env!("OUT_DIR"), "/dropout.ptx"))),
    (
        "elementwise",
        include_str!(concat!(env!("OUT_DIR"), "/elementwise.ptx")),
    ),
    ("loss", include_str!(concat!(env!("OUT_DIR"), "/loss.ptx"))),
    ("optimizer", include_str!(concat!(env!("OUT_DIR"), "/optimizer.ptx"))),
];

pub struct Kernels {
    pub fill: CudaFunction,
    pub scale: CudaFunction,
    pub axpy: CudaFunction,
    pub binary: CudaFunction,
    pub strided_copy: CudaFunction,
    pub reduce_thread: CudaFunction,
    pub reduce_block: CudaFunction,
    pub dot: CudaFunction,
    pub activation_forward: CudaFunction,
    pub activation_backward: CudaFunction,
    pub dropout: CudaFunction,
    pub xent_forward: CudaFunction,
    pub xent_backward: CudaFunction,
    pub argmax_rows: CudaFunction,
    pub sgd: CudaFunction,
    pub adam: CudaFunction,
    pub gather_rows: CudaFunction,
    pub gather: CudaFunction,
    pub f32_to_bf16: CudaFunction,
    pub bf16_to_f32: CudaFunction,
}

impl Kernels {
    pub fn load(ctx: &Arc<CudaContext>) -> Result<Self, DriverError> {
        let mut modules = std::collections::HashMap::new();
        for (name, src) in PTX {
            modules.insert(*name, ctx.load_module(Ptx::from_src(*src))?);
        }
        let f = |m: &str, name: &str| modules[m].load_function(name);
        Ok(Kernels {
            fill: f("elementwise", "fill_f32")?,
            scale: f("elementwise", "scale_f32")?,
            axpy: f("elementwise", "axpy_f32")?,
            binary: f("elementwise", "binary_f32")?,
            strided_copy: f("elementwise", "strided_copy_f32")?,
            reduce_thread: f("elementwise", "reduce_thread_f32")?,
            reduce_block: f("elementwise", "reduce_block_f32")?,
            dot: f("elementwise", "dot_f32")?,
            activation_forward: f("activation", "activation_forward_f32")?,
            activation_backward: f("activation", "activation_backward_f32")?,
            dropout: f("dropout", "dropout_f32")?,
            xent_forward: f("loss", "xent_forward_f32")?,
            xent_backward: f("loss", "xent_backward_f32")?,
            argmax_rows: f("loss", "argmax_rows_f32")?,
            sgd: f("optimizer", "sgd_f32")?,
            adam: f("optimizer", "adam_f32")?,
            gather_rows: f("data", "gather_rows_f32")?,
            gather: f("data", "gather_f32")?,
            f32_to_bf16: f("cast", "f32_to_bf16")?,
            bf16_to_f32: f("cast", "bf16_to_f32")?,
        })
    }
}
