//! Backends run ops' kernels and own their buffers. The CPU backend is the reference.

pub mod cpu;
pub mod cuda;
