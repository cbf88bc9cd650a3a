//! ferrofix-cuda: the CUDA backend of pytest-ferrofix.
//!
//! Nothing CUDA is needed to build or load this crate: cudarc dlopens `libcuda` and
//! `libnvrtc` at first use, and every entry point first checks that the library is present
//! (`is_culib_present`), so a CPU-only machine gets [`Error::CudaUnavailable`], never a
//! panic. Kernels are `.cu` text compiled by NVRTC for the device's architecture at first
//! use, cached per process (and on disk when `FERROFIX_KERNEL_CACHE` names a directory).
//!
//! Memory is never allocated here: callers (torch, through the binding) pass device
//! pointers and the raw stream to launch on, so the caller's allocator owns every buffer
//! and work is ordered with the caller's own kernels without a host sync.

pub mod kernels;
mod library;
pub mod loss;
pub mod nvrtc;
pub mod runtime;

pub use ferrofix_core::{Error, Result};
