//! Bindings of the CUDA backend: probes for `doctor`, the NVRTC compile check, and the loss
//! launched on torch's device pointers and current stream.
//!
//! Nothing here touches a device unless called: importing the extension on a CPU-only
//! machine never loads `libcuda` or `libnvrtc`.

use ferrofix_core::dtype::DType;
use ferrofix_core::loss::Problem;
use ferrofix_core::{Error, Result};
use ferrofix_cuda::kernels::{KERNELS, by_file};
use ferrofix_cuda::loss::{self, DeviceBuffers, Plan};
use ferrofix_cuda::nvrtc::{self, Target};
use ferrofix_cuda::runtime;
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::loss::loss_options;

/// Whether a CUDA driver with at least one device is present. Never raises.
#[pyfunction]
fn cuda_available() -> bool {
    runtime::cuda_available()
}

/// The driver's CUDA version `(major, minor)`.
#[pyfunction]
fn cuda_driver_version() -> PyResult<(i32, i32)> {
    runtime::driver_version().map_err(to_py)
}

/// One device as Python receives it:
/// `(index, name, (major, minor), total_memory, SMs, L2 bytes)`.
type DeviceRow = (usize, String, (i32, i32), usize, usize, usize);

/// Every device the driver reports.
#[pyfunction]
fn cuda_devices() -> PyResult<Vec<DeviceRow>> {
    let count = runtime::device_count().map_err(to_py)?;
    (0..count)
        .map(|ordinal| {
            let info = runtime::device_info(ordinal).map_err(to_py)?;
            Ok((
                info.ordinal,
                info.name,
                info.compute_capability,
                info.total_memory,
                info.multiprocessors,
                info.l2_bytes,
            ))
        })
        .collect()
}

/// Whether NVRTC can be loaded (after the Python side preloaded it). Never raises.
#[pyfunction]
fn nvrtc_available() -> bool {
    nvrtc::nvrtc_available()
}

/// NVRTC's version `(major, minor)`.
#[pyfunction]
fn nvrtc_version() -> PyResult<(i32, i32)> {
    nvrtc::nvrtc_version().map_err(to_py)
}

/// `[(file, [function, ...]), ...]` for every kernel source shipped.
#[pyfunction]
fn cuda_kernel_files() -> Vec<(&'static str, Vec<&'static str>)> {
    KERNELS
        .iter()
        .map(|k| (k.file, k.functions.to_vec()))
        .collect()
}

fn parse_target(arch: &str) -> Result<Target> {
    let parse = |digits: &str| digits.parse::<u32>().ok().filter(|cc| *cc >= 50);
    let target = if let Some(cc) = arch.strip_prefix("compute_").and_then(parse) {
        Some(Target::Ptx(cc))
    } else {
        arch.strip_prefix("sm_").and_then(parse).map(Target::Cubin)
    };
    target.ok_or_else(|| {
        Error::invalid(
            "arch",
            format!("must be 'compute_XY' (PTX) or 'sm_XY' (cubin) with XY >= 50, got {arch:?}"),
        )
    })
}

/// Compile one kernel source for `arch`; returns `(image bytes, log)`. `cached` goes
/// through the per-process and disk caches the device path uses. Compile errors and
/// warnings raise `CudaError` with NVRTC's log.
#[pyfunction]
#[pyo3(signature = (file, arch, *, cached=false))]
fn cuda_compile(
    py: Python<'_>,
    file: &str,
    arch: &str,
    cached: bool,
) -> PyResult<(Vec<u8>, String)> {
    let kernel = by_file(file).map_err(to_py)?;
    let target = parse_target(arch).map_err(to_py)?;
    let image = py
        .detach(|| {
            if cached {
                nvrtc::compile(kernel, target).map(|image| (*image).clone())
            } else {
                nvrtc::compile_uncached(kernel, target)
            }
        })
        .map_err(to_py)?;
    Ok((image.bytes, image.log))
}

/// `(splits, threads, cluster, row_blocks, workspace_bytes)` the loss will use for
/// `rows × vocab` elements of `dtype` on `device` (forced to `splits` blocks per row or to
/// `cluster` when given; see `ferrofix_cuda::loss::plan`).
#[pyfunction]
#[pyo3(signature = (device, rows, vocab, dtype, splits=None, cluster=None))]
fn cuda_loss_plan(
    device: usize,
    rows: usize,
    vocab: usize,
    dtype: &str,
    splits: Option<u32>,
    cluster: Option<u32>,
) -> PyResult<(u32, u32, u32, u32, usize)> {
    let dtype = cuda_dtype(dtype)?;
    let plan = loss::plan(device, rows, vocab, dtype.size(), splits, cluster).map_err(to_py)?;
    Ok((
        plan.splits,
        plan.threads,
        plan.cluster,
        plan.row_blocks,
        plan.workspace_bytes(rows),
    ))
}

/// The logits dtype named `name`, one the kernels take.
fn cuda_dtype(name: &str) -> PyResult<DType> {
    DType::parse_for(
        name,
        "causal_lm_loss on CUDA",
        &[DType::Float32, DType::BFloat16, DType::Float16],
    )
    .map_err(to_py)
}

/// Queue the loss kernels on `stream` of `device`; returns the flat position of the first
/// label outside the vocabulary (nothing but the check then ran), or None. Every pointer
/// comes from a torch tensor the Python caller allocated and keeps alive (see
/// `ferrofix/_cuda.py`).
#[pyfunction]
#[pyo3(signature = (
    device, stream, dtype, logits_shape, labels_shape, *, shift, ignore_index, reduction,
    z_loss_scale, softcap, label_smoothing, num_items_in_batch, logits, grad, labels,
    labels_i64, row_loss, lse, counters, result, workspace, splits, threads, cluster,
    row_blocks
))]
#[allow(clippy::too_many_arguments)]
fn cuda_causal_lm_loss(
    py: Python<'_>,
    device: usize,
    stream: u64,
    dtype: &str,
    logits_shape: Vec<usize>,
    labels_shape: Vec<usize>,
    shift: bool,
    ignore_index: i64,
    reduction: &str,
    z_loss_scale: f64,
    softcap: Option<f64>,
    label_smoothing: f64,
    num_items_in_batch: Option<f64>,
    logits: u64,
    grad: u64,
    labels: u64,
    labels_i64: bool,
    row_loss: u64,
    lse: u64,
    counters: u64,
    result: u64,
    workspace: u64,
    splits: u32,
    threads: u32,
    cluster: u32,
    row_blocks: u32,
) -> PyResult<Option<usize>> {
    let dtype = cuda_dtype(dtype)?;
    let problem = Problem::new(&logits_shape, &labels_shape, shift).map_err(to_py)?;
    let options = loss_options(
        ignore_index,
        reduction,
        z_loss_scale,
        softcap,
        label_smoothing,
        num_items_in_batch,
    )?;
    let buffers = DeviceBuffers {
        logits,
        grad,
        labels,
        labels_i64,
        row_loss,
        lse,
        counters,
        result,
        workspace,
    };
    let plan = Plan {
        splits,
        threads,
        cluster,
        row_blocks,
    };
    // SAFETY: the Python caller passes pointers of live torch tensors of the documented
    // sizes on `device`, keeps them alive past the launch (the caching allocator defers
    // reuse until the stream passes this point) and passes that device's current stream.
    py.detach(|| unsafe {
        loss::launch(device, stream, dtype, &problem, &options, &plan, &buffers)
    })
    .map_err(to_py)
}

/// Queue `grad *= *scale` on `stream` of `device` (`grad`: `elements` of `dtype`; `scale`:
/// one float32), for backward's grad_output without a host read.
#[pyfunction]
fn cuda_scale_gradient(
    py: Python<'_>,
    device: usize,
    stream: u64,
    dtype: &str,
    grad: u64,
    elements: usize,
    scale: u64,
) -> PyResult<()> {
    let dtype = cuda_dtype(dtype)?;
    // SAFETY: the Python caller passes the data pointers of live torch tensors of the
    // documented sizes on `device` and that device's current stream.
    py.detach(|| unsafe { loss::scale_gradient(device, stream, dtype, grad, elements, scale) })
        .map_err(to_py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cuda_available, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_driver_version, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_devices, m)?)?;
    m.add_function(wrap_pyfunction!(nvrtc_available, m)?)?;
    m.add_function(wrap_pyfunction!(nvrtc_version, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_kernel_files, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_compile, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_loss_plan, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_scale_gradient, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_causal_lm_loss, m)?)
}
