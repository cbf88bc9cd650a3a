//! Reusable output buffers: the CPU loss's gradients, the tokenizer's batches and packed
//! batches.
//!
//! A training step's cross-entropy gradient is as large as the logits (262 MB at N = 2048,
//! V = 32000 f32), and fresh memory for it costs the kernel a zeroing pass and a fault per
//! page: that took longer than computing the gradient itself. A tokenized batch is smaller
//! (40 MB for 100k texts of 25 tokens) but there the faults, and unmapping the previous
//! batch, were a third of the call. Like torch's CUDA caching allocator, these calls
//! therefore hand out numpy arrays whose memory returns to a small pool when the last Python
//! reference to it dies (the array, its views, a torch tensor made with `torch.from_numpy`),
//! and the next call of a similar size takes it from there.
//!
//! Invariants:
//! - A buffer is reused only after its owner object was deallocated: numpy collapses every
//!   view's base to that owner and `torch.from_numpy` holds the array, so no live array or
//!   tensor can still see memory that is handed out again.
//! - Each kind of output has its own pool with its own bound on idle buffers, so batches
//!   never evict gradients; `release_gradient_buffers` and `release_batch_buffers` free them.
//! - Contents of a new buffer are unspecified, as with `numpy.empty`.

use std::mem::MaybeUninit;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ferrofix_core::memory::{HUGE_PAGE, allocation_refused, try_huge_vec};
use ferrofix_core::tokenizer::id_buffers::ID_BUFFERS;
use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{Element, PyArrayDyn};
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::tokenizer::{HELD_STRINGS, TEXT_VIEWS};
use ferrofix_core::Error;

/// Buffers smaller than this are cheap to allocate and are not pooled. Larger ones came
/// from the allocator as fresh pages on every call (the three 800 KB outputs of 100k
/// one-word texts faulted in ~0.8 ms of a 7.8 ms call).
const MIN_POOLED_BYTES: usize = 256 << 10;

/// Arrays from this size start on a huge-page boundary: their buffer has a huge page to
/// spare, so the kernel can back every page of the array with a transparent huge page.
/// Unaligned, an 8 MB array kept ~2 MB at its ends in 4 KiB pages, whose page-table walks
/// (the page tables themselves out of cache after the process has been idle or busy
/// elsewhere) cost a memory-bound reader such as `check_packing` ~5-10%.
const HUGE_ALIGNED_BYTES: usize = 2 * HUGE_PAGE;

/// 8-byte words: aligned for every element type the outputs hold.
type Memory = Vec<MaybeUninit<u64>>;

/// Idle buffers of one kind of output, the most recently returned last. The pool's memory
/// is the price of the speed, so it stays small.
pub struct Pool {
    idle: Mutex<Vec<Memory>>,
    max_idle: usize,
}

/// Gradients: one for the steady state of a training loop, one for a second shape in flight.
pub static GRADIENTS: Pool = Pool::new(2);
/// Tokenized batches: ids, mask and lengths of the steady state, and of a second shape in
/// flight.
pub static BATCHES: Pool = Pool::new(6);
/// Packed batches: the five (rows, capacity) arrays of one batch. A loop that replaces its
/// batch with the next still reuses them: the batch before the previous one is back by then.
pub static PACKED_BATCHES: Pool = Pool::new(5);

impl Pool {
    const fn new(max_idle: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Memory>> {
        // A panic elsewhere cannot leave the list of plain vectors inconsistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The smallest idle buffer of `words` to twice that, or fresh memory; `None` when the
    /// allocator cannot provide it.
    fn take(&self, words: usize) -> Option<Memory> {
        let mut idle = self.idle();
        let best = (0..idle.len())
            .filter(|&i| (words..=2 * words).contains(&idle[i].len()))
            .min_by_key(|&i| idle[i].len());
        if let Some(i) = best {
            return Some(idle.remove(i));
        }
        drop(idle);
        let mut memory = try_huge_vec(words)?;
        // SAFETY: MaybeUninit<u64> needs no initialisation, and the capacity is `words`.
        unsafe { memory.set_len(words) };
        Some(memory)
    }

    fn give_back(&self, memory: Memory) {
        let mut idle = self.idle();
        idle.push(memory);
        if idle.len() > self.max_idle {
            idle.remove(0);
        }
    }

    /// Free the idle buffers; returns how many bytes that released.
    fn release(&self) -> usize {
        let freed: Vec<Memory> = std::mem::take(&mut *self.idle());
        freed.iter().map(|m| m.len() * size_of::<u64>()).sum()
    }

    /// Bytes waiting in the pool.
    fn idle_bytes(&self) -> usize {
        self.idle().iter().map(|m| m.len() * size_of::<u64>()).sum()
    }
}

/// The owner of one pooled buffer: the base object of the numpy array handed out.
#[pyclass(frozen, module = "ferrofix._core")]
struct PooledBuffer {
    memory: Memory,
    pool: &'static Pool,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.memory));
    }
}

/// An uninitialised C-contiguous array of `shape`, from `pool` when it is large.
pub fn pooled_array<'py, T: Element>(
    py: Python<'py>,
    shape: &[usize],
    pool: &'static Pool,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let elements = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|n| n.checked_mul(size_of::<T>()).is_some())
        .ok_or_else(|| to_py(Error::invalid("shape", "is too large to allocate")))?;
    let bytes = elements * size_of::<T>();
    if bytes < MIN_POOLED_BYTES {
        // SAFETY: an uninitialised numpy array of plain numbers, as `numpy.empty` makes.
        return Ok(unsafe { PyArrayDyn::<T>::new(py, shape, false) });
    }
    let align = if bytes >= HUGE_ALIGNED_BYTES {
        HUGE_PAGE
    } else {
        size_of::<u64>()
    };
    // Room for the array wherever the buffer starts: at most `align - 8` bytes go unused
    // before the aligned start (untouched, so they cost address space, not memory).
    let words = (bytes + align - size_of::<u64>()).div_ceil(size_of::<u64>());
    let memory = pool.take(words).ok_or_else(|| {
        let what = format!("an array of shape {shape:?} ({bytes} bytes)");
        to_py(allocation_refused("shape", what, "ask for a smaller array"))
    })?;
    let owner = Bound::new(py, PooledBuffer { memory, pool })?;
    let start = owner.get().memory.as_ptr();
    let skip = (start as usize).next_multiple_of(align) - start as usize;
    // SAFETY: `skip < align` bytes, a multiple of 8 (the buffer is 8-byte aligned and so is
    // `align`), and the buffer holds at least `bytes + align - 8` bytes, so the array's
    // `bytes` after the skipped ones lie inside it.
    let data = unsafe { start.cast::<u8>().add(skip) }.cast::<T>();
    // SAFETY: the memory holds at least `elements` values of T from `data`, 8-byte aligned
    // (T is at most 8 bytes), and lives as long as `owner`. The values are unspecified bits,
    // as `numpy.empty` gives.
    let view = unsafe { ArrayViewD::from_shape_ptr(IxDyn(shape), data) };
    // SAFETY: the array's base object is `owner`, so the memory stays allocated and unmoved
    // (it is never resized) while the array or any view of it lives.
    Ok(unsafe { PyArrayDyn::borrow_from_array(&view, owner.into_any()) })
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
        "float32" => Ok(pooled_array::<f32>(py, &shape, &GRADIENTS)?.into_any()),
        "float64" => Ok(pooled_array::<f64>(py, &shape, &GRADIENTS)?.into_any()),
        "uint16" => Ok(pooled_array::<u16>(py, &shape, &GRADIENTS)?.into_any()),
        other => Err(to_py(Error::invalid(
            "dtype",
            format!("must be one of 'float32', 'float64', 'uint16'; got '{other}'"),
        ))),
    }
}

/// Free the idle gradient buffers; returns how many bytes that released.
#[pyfunction]
fn release_gradient_buffers() -> usize {
    GRADIENTS.release()
}

/// Bytes waiting in the gradient pool.
#[pyfunction]
fn idle_gradient_bytes() -> usize {
    GRADIENTS.idle_bytes()
}

/// Free the idle tokenized-batch buffers (the outputs', the core's content-id buffers, the
/// text views' and the held strings'); returns how many bytes that released.
#[pyfunction]
fn release_batch_buffers() -> usize {
    BATCHES.release() + ID_BUFFERS.release() + TEXT_VIEWS.release() + HELD_STRINGS.release()
}

/// Bytes waiting in the tokenized-batch output pool.
#[pyfunction]
fn idle_batch_bytes() -> usize {
    BATCHES.idle_bytes()
}

/// Free the idle packed-batch buffers; returns how many bytes that released.
#[pyfunction]
fn release_packed_batch_buffers() -> usize {
    PACKED_BATCHES.release()
}

/// Bytes waiting in the packed-batch output pool.
#[pyfunction]
fn idle_packed_batch_bytes() -> usize {
    PACKED_BATCHES.idle_bytes()
}

/// Bytes waiting in the pools of per-text buffers (views and held strings).
#[pyfunction]
fn idle_text_view_bytes() -> usize {
    TEXT_VIEWS.idle_bytes() + HELD_STRINGS.idle_bytes()
}

/// Bytes waiting in the core's pool of content-id buffers.
#[pyfunction]
fn idle_token_id_bytes() -> usize {
    ID_BUFFERS.idle_bytes()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MIN_POOLED_BYTES", MIN_POOLED_BYTES)?;
    m.add_class::<PooledBuffer>()?;
    m.add_function(wrap_pyfunction!(gradient_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(release_gradient_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(idle_gradient_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(release_batch_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(idle_batch_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(idle_text_view_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(release_packed_batch_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(idle_packed_batch_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(idle_token_id_bytes, m)?)
}
