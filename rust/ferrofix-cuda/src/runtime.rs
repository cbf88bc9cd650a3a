//! The CUDA driver: availability, one primary context per device, device facts.
//!
//! Every call into cudarc goes through [`guarded`] (see `library.rs`), so a machine without
//! a driver gets [`Error::CudaUnavailable`], never a panic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, DriverError, sys};

use crate::library::DRIVER;
use crate::{Error, Result};

/// Run `f`, which calls the driver through cudarc, guarded by the driver probe.
pub(crate) fn guarded<T>(op: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    DRIVER.guarded(op, f)
}

/// A driver error as a core error naming the operation.
pub(crate) fn driver_error(op: &str, err: DriverError) -> Error {
    let message = match err.error_string() {
        Ok(text) => format!("{:?}: {}", err.0, text.to_string_lossy()),
        Err(_) => format!("{:?}", err.0),
    };
    Error::Cuda {
        op: op.to_string(),
        message,
    }
}

/// Whether a CUDA driver is present and reports at least one device. Never panics.
pub fn cuda_available() -> bool {
    device_count().is_ok_and(|count| count > 0)
}

/// Number of CUDA devices the driver reports.
///
/// # Errors
/// [`Error::CudaUnavailable`] without a driver or when it fails to initialise.
pub fn device_count() -> Result<usize> {
    guarded("cuDeviceGetCount", || {
        let unavailable = |err: DriverError| Error::CudaUnavailable {
            reason: format!("the CUDA driver failed to initialise ({:?})", err.0),
        };
        cudarc::driver::result::init().map_err(unavailable)?;
        let count = cudarc::driver::result::device::get_count().map_err(unavailable)?;
        Ok(usize::try_from(count).unwrap_or(0))
    })
}

/// The driver's CUDA version as `(major, minor)`, e.g. `(13, 0)`.
///
/// # Errors
/// [`Error::CudaUnavailable`] without a driver.
pub fn driver_version() -> Result<(i32, i32)> {
    guarded("cuDriverGetVersion", || {
        let mut version = 0;
        // SAFETY: the driver library is loaded (checked by `guarded`); `version` is a valid
        // out-pointer for the duration of the call.
        unsafe { sys::cuDriverGetVersion(&mut version) }
            .result()
            .map_err(|err| driver_error("cuDriverGetVersion", err))?;
        Ok((version / 1000, (version % 1000) / 10))
    })
}

/// The primary context of device `ordinal`, retained once per process and shared with
/// torch (which also runs on the primary context), bound to the calling thread.
///
/// # Errors
/// [`Error::CudaUnavailable`] without a driver; [`Error::InvalidArgument`] for a device
/// that does not exist; [`Error::Cuda`] when the driver fails.
pub fn context(ordinal: usize) -> Result<Arc<CudaContext>> {
    static CONTEXTS: OnceLock<Mutex<HashMap<usize, Arc<CudaContext>>>> = OnceLock::new();
    let count = device_count()?;
    if count == 0 {
        return Err(Error::CudaUnavailable {
            reason: "the CUDA driver reports no device".into(),
        });
    }
    if ordinal >= count {
        return Err(Error::invalid(
            "device",
            format!("must be a CUDA device index in [0, {count}), got {ordinal}"),
        ));
    }
    guarded("cuDevicePrimaryCtxRetain", || {
        let mut contexts = CONTEXTS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ctx = match contexts.get(&ordinal) {
            Some(ctx) => ctx.clone(),
            None => {
                let ctx = CudaContext::new(ordinal)
                    .map_err(|err| driver_error("cuDevicePrimaryCtxRetain", err))?;
                contexts.insert(ordinal, ctx.clone());
                ctx
            }
        };
        ctx.bind_to_thread()
            .map_err(|err| driver_error("cuCtxSetCurrent", err))?;
        Ok(ctx)
    })
}

/// What `python -m ferrofix doctor` reports about one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device index.
    pub ordinal: usize,
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability `(major, minor)`.
    pub compute_capability: (i32, i32),
    /// Total memory in bytes.
    pub total_memory: usize,
    /// Number of streaming multiprocessors.
    pub multiprocessors: usize,
    /// L2 cache size in bytes.
    pub l2_bytes: usize,
    /// Most shared memory a block may opt in to, in bytes.
    pub shared_per_block: usize,
}

/// Facts about device `ordinal`, queried once per process (every loss call plans with
/// them).
///
/// # Errors
/// As [`context`].
pub fn device_info(ordinal: usize) -> Result<DeviceInfo> {
    static INFOS: OnceLock<Mutex<HashMap<usize, DeviceInfo>>> = OnceLock::new();
    let infos = INFOS.get_or_init(Mutex::default);
    let known = infos
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&ordinal)
        .cloned();
    if let Some(info) = known {
        return Ok(info);
    }
    let info = query_device_info(ordinal)?;
    infos
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(ordinal, info.clone());
    Ok(info)
}

fn query_device_info(ordinal: usize) -> Result<DeviceInfo> {
    let ctx = context(ordinal)?;
    guarded("cuDeviceGetAttribute", || {
        let fail = |err| driver_error("cuDeviceGetAttribute", err);
        let sms = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(fail)?;
        let l2 = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
            .map_err(fail)?;
        let shared = ctx
            .attribute(
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .map_err(fail)?;
        Ok(DeviceInfo {
            ordinal,
            name: ctx.name().map_err(fail)?,
            compute_capability: ctx.compute_capability().map_err(fail)?,
            total_memory: ctx.total_mem().map_err(fail)?,
            multiprocessors: usize::try_from(sms).unwrap_or(1).max(1),
            l2_bytes: usize::try_from(l2).unwrap_or(0),
            shared_per_block: usize::try_from(shared).unwrap_or(0),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_never_panic_and_agree_with_each_other() {
        // Runs on every machine: without a driver each probe reports, never panics.
        let available = cuda_available();
        match device_count() {
            Ok(count) => assert_eq!(available, count > 0),
            Err(err) => {
                assert!(!available);
                assert!(matches!(err, Error::CudaUnavailable { .. }), "{err}");
            }
        }
        if !available {
            let err = context(0).unwrap_err();
            assert!(matches!(err, Error::CudaUnavailable { .. }), "{err}");
        }
    }
}
