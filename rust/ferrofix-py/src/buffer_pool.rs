//! Reusable gradient buffers for the CPU loss.
//!
//! A training step's cross-entropy gradient is as large as the logits (262 MB at N = 2048,
//! V = 32000 f32), and fresh memory for it costs the kernel a zeroing pass and a fault per
//! page: that took longer than computing the gradient itself. Like torch's CUDA caching
//! allocator, the loss therefore hands out numpy arrays whose memory returns to a small pool
//! when the last Python reference to it dies (the array, its views, a torch tensor made
//! with `torch.from_numpy`), and the next call of a similar size takes it from there.
//!
//! Invariants:
//! - A buffer is reused only after its owner object was deallocated: numpy collapses every
//!   view's base to that owner and `torch.from_numpy` holds the array, so no live array or
//!   tensor can still see memory that is handed out again.
//! - At most `MAX_IDLE` buffers wait in the pool; `release_gradient_buffers` frees them.
//! - Contents of a new buffer are unspecified, as with `numpy.empty`.

use std::mem::MaybeUninit;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ferrofix_core::memory::huge_vec;
use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{Element, PyArrayDyn};
use pyo3::prelude::*;

use crate::errors::to_py;
use ferrofix_core::Error;

/// Buffers smaller than this are cheap to allocate and are not pooled.
const MIN_POOLED_BYTES: usize = 1 << 20;
/// Idle buffers kept: one for the steady state of a training loop, one for a second shape
/// in flight (the pool's memory is the price of the speed, so it stays small).
const MAX_IDLE: usize = 2;

/// 8-byte words: aligned for every element type the loss writes.
type Memory = Vec<MaybeUninit<u64>>;

/// Idle buffers, the most recently returned last.
static IDLE: Mutex<Vec<Memory>> = Mutex::new(Vec::new());

fn idle() -> MutexGuard<'static, Vec<Memory>> {
    // A panic elsewhere cannot leave the list of plain vectors inconsistent.
    IDLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The smallest idle buffer of `words` to twice that, or fresh memory.
fn take(words: usize) -> Memory {
    let mut idle = idle();
    let best = (0..idle.len())
        .filter(|&i| (words..=2 * words).contains(&idle[i].len()))
        .min_by_key(|&i| idle[i].len());
    if let Some(i) = best {
        return idle.remove(i);
    }
    drop(idle);
    let mut memory = huge_vec(words);
    // SAFETY: MaybeUninit<u64> needs no initialisation, and the capacity is `words`.
    unsafe { memory.set_len(words) };
    memory
}

/// The owner of one pooled buffer: the base object of the numpy array handed out.
#[pyclass(frozen, module = "ferrofix._core")]
struct PooledBuffer {
    memory: Memory,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let mut idle = idle();
        idle.push(std::mem::take(&mut self.memory));
        if idle.len() > MAX_IDLE {
            idle.remove(0);
        }
    }
}

fn pooled_array<'py, T: Element>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    let elements = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(size_of::<T>()).is_some())
        .ok_or_else(|| to_py(Error::invalid("shape", "is too large to allocate")))?;
    let bytes = elements * size_of::<T>();
    if bytes < MIN_POOLED_BYTES {
        // SAFETY: an uninitialised numpy array of plain numbers, as `numpy.empty` makes.
        return Ok(unsafe { PyArrayDyn::<T>::new(py, shape, false) }.into_any());
    }
    let owner = Bound::new(
        py,
        PooledBuffer {
            memory: take(bytes.div_ceil(size_of::<u64>())),
        },
    )?;
    let data = owner.get().memory.as_ptr().cast::<T>();
    // SAFETY: the memory holds at least `elements` values of T, 8-byte aligned (T is at most
    // 8 bytes), and lives as long as `owner`. The values are unspecified bits, as
    // `numpy.empty` gives.
    let view = unsafe { ArrayViewD::from_shape_ptr(IxDyn(shape), data) };
    // SAFETY: the array's base object is `owner`, so the memory stays allocated and unmoved
    // (it is never resized) while the array or any view of it lives.
    Ok(unsafe { PyArrayDyn::borrow_from_array(&view, owner.into_any()) }.into_any())
}

/// An uninitialised C-contiguous array of `shape` and `dtype` ("float32", "float64" or
/// "uint16"), from the pool when it is large.
#[pyfunction]
fn gradient_buffer<'py>(
    py: Python<'py>,
    shape: Vec<usize>,
    dtype: &str,
) -> PyResult<Bound<'py, PyAny>> {
    match dtype {
        "float32" => pooled_array::<f32>(py, &shape),
        "float64" => pooled_array::<f64>(py, &shape),
        "uint16" => pooled_array::<u16>(py, &shape),
        other => Err(to_py(Error::invalid(
            "dtype",
            format!("must be one of 'float32', 'float64', 'uint16'; got '{other}'"),
        ))),
    }
}

/// Free the idle buffers; returns how many bytes that released.
#[pyfunction]
fn release_gradient_buffers() -> usize {
    let freed: Vec<Memory> = std::mem::take(&mut *idle());
    freed.iter().map(|m| m.len() * size_of::<u64>()).sum()
}

/// Bytes waiting in the pool.
#[pyfunction]
fn idle_gradient_bytes() -> usize {
    idle().iter().map(|m| m.len() * size_of::<u64>()).sum()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MIN_POOLED_BYTES", MIN_POOLED_BYTES)?;
    m.add_class::<PooledBuffer>()?;
    m.add_function(wrap_pyfunction!(gradient_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(release_gradient_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(idle_gradient_bytes, m)?)
}
