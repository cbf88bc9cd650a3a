//! The kernel sources shipped in this crate and their modules, loaded lazily per device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaFunction, CudaModule};
use cudarc::nvrtc::Ptx;

use crate::nvrtc::{self, Target};
use crate::runtime::{context, driver_error, guarded};
use crate::{Error, Result};

/// One `.cu` file and the `extern "C"` kernels it defines.
#[derive(Debug)]
pub struct KernelSource {
    /// File name under `kernels/`, also the NVRTC program name.
    pub file: &'static str,
    /// The CUDA C++ text.
    pub source: &'static str,
    /// Entry points, as launched.
    pub functions: &'static [&'static str],
}

/// The causal-LM cross-entropy kernels (see `kernels/cross_entropy.cu`).
pub const CROSS_ENTROPY: KernelSource = KernelSource {
    file: "cross_entropy.cu",
    source: include_str!("../kernels/cross_entropy.cu"),
    functions: &[
        "ce_count",
        "ce_fused_f32",
        "ce_fused_f16",
        "ce_fused_bf16",
        "ce_onchip_f32_c1",
        "ce_onchip_f16_c1",
        "ce_onchip_bf16_c1",
        "ce_onchip_plain_f32_c1",
        "ce_onchip_plain_f16_c1",
        "ce_onchip_plain_bf16_c1",
        "ce_onchip_f32_c2",
        "ce_onchip_f16_c2",
        "ce_onchip_bf16_c2",
        "ce_onchip_plain_f32_c2",
        "ce_onchip_plain_f16_c2",
        "ce_onchip_plain_bf16_c2",
        "ce_onchip_f32_c4",
        "ce_onchip_f16_c4",
        "ce_onchip_bf16_c4",
        "ce_onchip_plain_f32_c4",
        "ce_onchip_plain_f16_c4",
        "ce_onchip_plain_bf16_c4",
        "ce_onchip_f32_c8",
        "ce_onchip_f16_c8",
        "ce_onchip_bf16_c8",
        "ce_onchip_plain_f32_c8",
        "ce_onchip_plain_f16_c8",
        "ce_onchip_plain_bf16_c8",
        "ce_split_stats_f32",
        "ce_split_stats_f16",
        "ce_split_stats_bf16",
        "ce_split_finish_f32",
        "ce_split_finish_f16",
        "ce_split_finish_bf16",
        "ce_split_grad_f32",
        "ce_split_grad_f16",
        "ce_split_grad_bf16",
        "ce_reduce",
        "ce_scale_f32",
        "ce_scale_f16",
        "ce_scale_bf16",
    ],
};

/// Every kernel source, for `doctor` and the compile check.
pub const KERNELS: &[KernelSource] = &[CROSS_ENTROPY];

/// Look a kernel source up by file name.
///
/// # Errors
/// [`Error::InvalidArgument`] listing the known files.
pub fn by_file(file: &str) -> Result<&'static KernelSource> {
    KERNELS.iter().find(|k| k.file == file).ok_or_else(|| {
        let known: Vec<&str> = KERNELS.iter().map(|k| k.file).collect();
        Error::invalid(
            "kernel",
            format!("must be one of {}, got {file:?}", known.join(", ")),
        )
    })
}

/// The compute capability of device `ordinal` as one number, e.g. 90.
///
/// # Errors
/// As [`context`].
pub fn compute_capability(ordinal: usize) -> Result<u32> {
    let ctx = context(ordinal)?;
    guarded("cuDeviceGetAttribute", || {
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|err| driver_error("cuDeviceGetAttribute", err))?;
        Ok(u32::try_from(major * 10 + minor).unwrap_or(0))
    })
}

/// `kernel`'s module on device `ordinal`: compiled for the device and loaded once.
///
/// # Errors
/// As [`nvrtc::compile`] and [`context`]; [`Error::Cuda`] when the driver rejects it.
pub fn module(kernel: &'static KernelSource, ordinal: usize) -> Result<Arc<CudaModule>> {
    type Modules = Mutex<HashMap<(&'static str, usize), Arc<CudaModule>>>;
    static MODULES: OnceLock<Modules> = OnceLock::new();
    let modules = MODULES.get_or_init(Mutex::default);
    if let Some(module) = modules
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&(kernel.file, ordinal))
    {
        return Ok(module.clone());
    }
    let ctx = context(ordinal)?;
    let cc = compute_capability(ordinal)?;
    let image = nvrtc::compile(kernel, Target::Cubin(cc))?;
    let op = format!("cuModuleLoadData of {}", kernel.file);
    let module = guarded(&op, || {
        ctx.load_module(Ptx::from_binary(image.bytes.clone()))
            .map_err(|err| driver_error(&op, err))
    })?;
    modules
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert((kernel.file, ordinal), module.clone());
    Ok(module)
}

/// One entry point of `kernel` on device `ordinal`, looked up once per process (every
/// loss call launches several).
///
/// # Errors
/// As [`module`]; [`Error::Cuda`] naming the function when the module lacks it.
pub fn function(kernel: &'static KernelSource, name: &str, ordinal: usize) -> Result<CudaFunction> {
    type Functions = Mutex<HashMap<(String, usize), CudaFunction>>;
    static FUNCTIONS: OnceLock<Functions> = OnceLock::new();
    let functions = FUNCTIONS.get_or_init(Mutex::default);
    let key = (format!("{}/{name}", kernel.file), ordinal);
    if let Some(function) = functions
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&key)
    {
        return Ok(function.clone());
    }
    let module = module(kernel, ordinal)?;
    let op = format!("cuModuleGetFunction {name}");
    let function = guarded(&op, || {
        module
            .load_function(name)
            .map_err(|err| driver_error(&op, err))
    })?;
    functions
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(key, function.clone());
    Ok(function)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_defined_in_its_source() {
        for kernel in KERNELS {
            for function in kernel.functions {
                let definition = format!("void {function}(");
                let by_macro = kernel.source.contains(&format!("({function},"));
                assert!(
                    kernel.source.contains(&definition) || by_macro,
                    "{function} not in {}",
                    kernel.file
                );
            }
        }
        assert!(by_file("cross_entropy.cu").is_ok());
        assert!(by_file("nope.cu").is_err());
    }
}
