//! Large output buffers that fault in cheaply.
//!
//! Native ops return arrays of millions of elements in fresh memory. Faulting that in 4 KiB
//! pages costs a kernel trap per page (about 250 per MiB), which for the fast ops is a large
//! share of the call: the cross-entropy gradient gained ~40% at N·V = 65M and packing 1M
//! items allocates ~30 MB of outputs. Linux's transparent huge pages fault 2 MiB at a time;
//! in the common `madvise` THP mode a buffer has to ask for them before its first write.
//! All advice is advisory: any failure is ignored and only costs speed.

/// Buffers smaller than this gain nothing from huge pages (they hold no aligned 2 MiB page).
const HUGE_PAGE: usize = 2 << 20;

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

/// The machine's physical memory in bytes, when the OS reports it.
pub fn physical_memory() -> Option<usize> {
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
        let vec = try_huge_vec::<u64>(1 << 20).unwrap_or_default();
        assert_eq!(vec.capacity(), 1 << 20);
        assert!(physical_memory().is_none_or(|bytes| bytes > 1 << 20));
    }
}
