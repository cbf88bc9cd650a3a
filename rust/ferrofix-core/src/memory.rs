//! Large output buffers that fault in cheaply.
//!
//! Native ops return arrays of millions of elements in fresh memory. Faulting that in 4 KiB
//! pages costs a kernel trap per page (about 250 per MiB), which for the fast ops is a large
//! share of the call: the cross-entropy gradient gained ~40% at N·V = 65M and packing 1M
//! items allocates ~30 MB of outputs. Linux's transparent huge pages fault 2 MiB at a time;
//! in the common `madvise` THP mode a buffer has to ask for them before its first write.
//! All advice is advisory: any failure is ignored and only costs speed.
//!
//! Outputs sized by an argument (a shape, a padding length, a capacity) are checked against
//! the machine's memory and allocated fallibly, so an impossible size is an error naming
//! that argument, never an aborted process.

use crate::error::{Error, Result};

/// The size (and alignment) of a transparent huge page on x86_64 and most aarch64 Linux:
/// buffers smaller than this gain nothing from huge pages (they hold no aligned page).
pub const HUGE_PAGE: usize = 2 << 20;

/// Ask Linux to back `buffer`'s memory with transparent huge pages before it is first
/// written. Contents are unchanged.
pub fn advise_huge_pages<T>(buffer: &[T]) {
    advise_range(buffer.as_ptr() as usize, std::mem::size_of_val(buffer));
}

/// An empty vector with room for `capacity` elements, its memory advised for huge pages.
pub fn huge_vec<T>(capacity: usize) -> Vec<T> {
    let vec = Vec::with_capacity(capacity);
    advise_range(vec.as_ptr() as usize, capacity * std::mem::size_of::<T>());
    vec
}

/// [`huge_vec`], or `None` when the allocator cannot provide the memory (instead of
/// aborting the process, as a failed `Vec` allocation does).
pub fn try_huge_vec<T>(capacity: usize) -> Option<Vec<T>> {
    let mut vec = Vec::new();
    vec.try_reserve_exact(capacity).ok()?;
    advise_range(vec.as_ptr() as usize, capacity * std::mem::size_of::<T>());
    Some(vec)
}

/// Element types whose all-zero bit pattern is a valid value (zero).
///
/// # Safety
/// Implement only for types for which every byte being 0 is a valid, initialised value.
pub unsafe trait ZeroBits: Copy {}

// SAFETY: all-zero bits are the integer 0 and the float +0.0.
unsafe impl ZeroBits for i32 {}
// SAFETY: as above.
unsafe impl ZeroBits for i64 {}
// SAFETY: as above.
unsafe impl ZeroBits for u32 {}
// SAFETY: as above.
unsafe impl ZeroBits for u64 {}
// SAFETY: as above.
unsafe impl ZeroBits for f32 {}
// SAFETY: as above.
unsafe impl ZeroBits for f64 {}

/// `len` zeros, as `vec![0; len]` (the allocator's lazily zeroed pages, not a write pass),
/// its memory advised for huge pages; `None` when the allocator refuses, instead of
/// aborting the process as `vec!` does.
pub fn try_zeroed_vec<T: ZeroBits>(len: usize) -> Option<Vec<T>> {
    let layout = std::alloc::Layout::array::<T>(len).ok()?;
    if layout.size() == 0 {
        return Some(vec![]);
    }
    // SAFETY: the layout has a non-zero size (checked above).
    let memory = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if memory.is_null() {
        return None;
    }
    // SAFETY: `memory` was allocated by the global allocator with `T`'s alignment and room
    // for exactly `len` elements (capacity = len), all of them zero bits, which `ZeroBits`
    // guarantees are initialised values of `T`.
    let vec = unsafe { Vec::from_raw_parts(memory, len, len) };
    advise_huge_pages(&vec);
    Some(vec)
}

/// The error for `what` (an output, described) when the allocator refuses it although
/// [`check_outputs_fit`] let it through: the machine has the memory, but not free now.
/// `arg` names the argument that sized it, `hint` says what to change.
pub fn allocation_refused(arg: &'static str, what: impl std::fmt::Display, hint: &str) -> Error {
    Error::invalid(
        arg,
        format!("{what} cannot be allocated (not enough free memory); {hint}"),
    )
}

/// Refuse `arrays` outputs of `shape` with `element_bytes` per element that together need
/// more than this machine's physical memory: the allocator may well grant them (Linux
/// overcommits), and writing them would end in the OOM killer instead of an error. `arg`
/// names the argument that sized them, `hint` says what to change.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `arg`, with the memory needed and available.
pub fn check_outputs_fit(
    arg: &'static str,
    arrays: usize,
    shape: &[usize],
    element_bytes: usize,
    hint: &str,
) -> Result<()> {
    match outputs_shortfall(arrays, shape, element_bytes) {
        None => Ok(()),
        Some(reason) => Err(Error::invalid(arg, format!("{reason}; {hint}"))),
    }
}

/// Why `arrays` outputs of `shape` cannot fit in this machine's memory ("an output array
/// of shape [..] would need 80.0 GiB, more than this machine's memory (23.5 GiB)"), or
/// `None` when they can (or the OS does not say how much memory there is).
pub fn outputs_shortfall(arrays: usize, shape: &[usize], element_bytes: usize) -> Option<String> {
    let needed = shape
        .iter()
        .try_fold(arrays.saturating_mul(element_bytes), |n, &d| {
            n.checked_mul(d)
        });
    let available = physical_memory();
    match (needed, available) {
        (Some(needed), Some(available)) if needed <= available => return None,
        // Nothing to compare with: the allocation decides.
        (Some(_), None) => return None,
        _ => {}
    }
    let gib = |bytes: usize| bytes as f64 / f64::from(1u32 << 30);
    let needed = needed.map_or("more than 2**64 bytes".to_string(), |n| {
        format!("{:.1} GiB", gib(n))
    });
    let available = available.map_or(String::new(), |a| format!(" ({:.1} GiB)", gib(a)));
    let what = if arrays == 1 {
        "an output array".to_string()
    } else {
        format!("{arrays} output arrays")
    };
    Some(format!(
        "{what} of shape {shape:?} would need {needed}, more than this machine's memory{available}"
    ))
}

/// The machine's physical memory in bytes, when the OS reports it (read once: every sized
/// output asks, and the query is a system call).
pub fn physical_memory() -> Option<usize> {
    static MEMORY: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *MEMORY.get_or_init(query_physical_memory)
}

fn query_physical_memory() -> Option<usize> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system configuration; -1 (unknown) is handled below.
        let (pages, page_size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let pages = usize::try_from(pages).ok()?;
        let page_size = usize::try_from(page_size).ok()?;
        pages.checked_mul(page_size)
    }
    #[cfg(not(unix))]
    None
}

/// A vector of `len` copies of `value`, its memory advised for huge pages before the fill.
pub fn huge_filled<T: Clone>(len: usize, value: T) -> Vec<T> {
    let mut vec = huge_vec(len);
    vec.resize(len, value);
    vec
}

fn advise_range(start: usize, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        let end = start + bytes;
        let aligned_start = start.next_multiple_of(HUGE_PAGE);
        let aligned_end = end - end % HUGE_PAGE;
        if aligned_end > aligned_start {
            // SAFETY: the range lies inside one live allocation the caller owns or borrows;
            // MADV_HUGEPAGE only changes how the kernel backs those pages, never their
            // contents, and the return value is deliberately ignored (advice only).
            unsafe {
                libc::madvise(
                    aligned_start as *mut libc::c_void,
                    aligned_end - aligned_start,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_never_changes_contents() {
        let filled = huge_filled(3 << 20, 7u32);
        assert!(filled.len() == 3 << 20 && filled.iter().all(|&v| v == 7));
        let mut pushed = huge_vec::<u64>(1 << 20);
        pushed.extend(0..1 << 20);
        advise_huge_pages(&pushed);
        assert_eq!(
            pushed.iter().sum::<u64>(),
            (1u64 << 20) * ((1 << 20) - 1) / 2
        );
        assert!(huge_vec::<u8>(0).is_empty());
    }

    #[test]
    fn impossible_allocations_are_refused_not_aborted() {
        assert!(try_huge_vec::<u64>(usize::MAX / 4).is_none());
        assert!(try_zeroed_vec::<f64>(usize::MAX / 4).is_none());
        assert!(try_zeroed_vec::<f64>(usize::MAX).is_none());
        let zeros = try_zeroed_vec::<i64>(3 << 20).unwrap_or_default();
        assert!(zeros.len() == 3 << 20 && zeros.iter().all(|&v| v == 0));
        assert_eq!(try_zeroed_vec::<u32>(0), Some(vec![]));
        let vec = try_huge_vec::<u64>(1 << 20).unwrap_or_default();
        assert_eq!(vec.capacity(), 1 << 20);
        assert!(physical_memory().is_none_or(|bytes| bytes > 1 << 20));
    }

    #[test]
    fn outputs_beyond_memory_are_an_error_naming_the_argument() {
        assert_eq!(
            check_outputs_fit("shape", 2, &[1000, 1000], 8, "hint"),
            Ok(())
        );
        assert_eq!(check_outputs_fit("shape", 1, &[], 8, "hint"), Ok(()));
        for shape in [vec![usize::MAX, 2], vec![1 << 40, 1 << 20]] {
            let Err(Error::InvalidArgument {
                arg,
                reason: message,
            }) = check_outputs_fit("seq_len", 1, &shape, 8, "lower it")
            else {
                panic!("{shape:?} was accepted");
            };
            assert_eq!(arg, "seq_len");
            assert!(
                message.contains("would need") && message.ends_with("; lower it"),
                "{message}"
            );
        }
        // What the allocator refused says so in one wording everywhere.
        assert_eq!(
            allocation_refused("capacity", "a (3, 8) int64 batch", "lower capacity").to_string(),
            "capacity: a (3, 8) int64 batch cannot be allocated (not enough free memory); \
             lower capacity"
        );
    }
}
