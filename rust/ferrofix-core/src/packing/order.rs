//! The processing order of the decreasing strategies: lengths largest first, ties by index.

use rayon::prelude::*;

use crate::error::Result;
use crate::memory::{huge_filled, huge_vec};
use crate::parallel;

/// Below this many items per distinct possible length, a comparison sort beats a counting
/// sort's O(capacity) histogram.
const COUNTING_SORT_MIN_ITEMS_PER_LENGTH: usize = 1;

/// Item indices sorted by length decreasing, ties by increasing index, and the lengths in
/// that order. `lengths` are in [1, capacity].
///
/// # Errors
/// When the pool cannot start.
pub fn decreasing(lengths: &[u32], capacity: u32) -> Result<(Vec<u32>, Vec<u32>)> {
    if lengths.len() >= capacity as usize * COUNTING_SORT_MIN_ITEMS_PER_LENGTH {
        return parallel::install(|| counting_sort(lengths, capacity));
    }
    let mut order: Vec<u32> = (0..lengths.len() as u32).collect();
    // Keys are unique (the index breaks ties), so an unstable sort is deterministic.
    let sorted = parallel::install(|| {
        order.par_sort_unstable_by_key(|&i| (std::cmp::Reverse(lengths[i as usize]), i));
        order.par_iter().map(|&i| lengths[i as usize]).collect()
    })?;
    Ok((order, sorted))
}

/// Stable counting sort on `capacity - length`: O(n + capacity) work, split over the pool
/// as per-chunk histograms and per-chunk scatters (the result does not depend on the split).
fn counting_sort(lengths: &[u32], capacity: u32) -> (Vec<u32>, Vec<u32>) {
    let keys = capacity as usize + 1;
    let key = |length: u32| (capacity - length) as usize;
    let chunk_len = lengths
        .len()
        .div_ceil(rayon::current_num_threads())
        .max(MIN_SORT_CHUNK);
    let mut starts: Vec<Vec<u32>> = lengths
        .par_chunks(chunk_len)
        .map(|chunk| {
            let mut counts = vec![0u32; keys];
            chunk.iter().for_each(|&length| counts[key(length)] += 1);
            counts
        })
        .collect();
    // Chunk t's items of key k go after every earlier key, then after chunk t-1's of key k.
    let mut sorted = huge_vec(lengths.len());
    let mut total = 0u32;
    for k in 0..keys {
        let before = total;
        for counts in &mut starts {
            let count = counts[k];
            counts[k] = total;
            total += count;
        }
        sorted.extend(std::iter::repeat_n(
            capacity - k as u32,
            (total - before) as usize,
        ));
    }
    let mut order = huge_filled(lengths.len(), 0u32);
    let target = SharedSlice(order.as_mut_ptr(), order.len());
    lengths
        .par_chunks(chunk_len)
        .zip(starts.par_iter_mut())
        .enumerate()
        .for_each(|(chunk, (lengths, next))| {
            let first = (chunk * chunk_len) as u32;
            for (i, &length) in lengths.iter().enumerate() {
                let slot = &mut next[key(length)];
                target.write(*slot as usize, first + i as u32);
                *slot += 1;
            }
        });
    (order, sorted)
}

/// Items per counting-sort task at least: below this a task costs more than it saves.
const MIN_SORT_CHUNK: usize = 1 << 15;

/// `out[order[k]] = values[k]`: processing order back to item order. `order` is a
/// permutation, so the parallel writes are disjoint.
pub fn scatter(values: &[i32], order: &[u32]) -> Vec<i32> {
    debug_assert_eq!(values.len(), order.len());
    let mut out = huge_filled(values.len(), 0i32);
    let target = SharedSlice(out.as_mut_ptr(), out.len());
    values
        .par_chunks(SCATTER_CHUNK)
        .zip(order.par_chunks(SCATTER_CHUNK))
        .for_each(|(values, order)| {
            for (&value, &i) in values.iter().zip(order) {
                target.write(i as usize, value);
            }
        });
    out
}

/// Items per parallel scatter task: large enough to amortise a task, small enough to balance.
const SCATTER_CHUNK: usize = 1 << 16;

/// A raw view of a slice that tasks write at disjoint indices.
struct SharedSlice<T>(*mut T, usize);

// Manual impls: a derive would require `T: Copy` though only the pointer is copied.
impl<T> Clone for SharedSlice<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SharedSlice<T> {}

// SAFETY: the pointer is only written through `write`, at indices the caller guarantees are
// distinct across threads (a permutation or disjoint counting-sort slots), and the slice outlives the parallel scope.
unsafe impl<T: Send> Sync for SharedSlice<T> {}
// SAFETY: as above; moving the view to another thread moves no ownership.
unsafe impl<T: Send> Send for SharedSlice<T> {}

impl<T> SharedSlice<T> {
    fn write(self, index: usize, value: T) {
        if index < self.1 {
            // SAFETY: index is in bounds (checked above) and no other thread writes it (each
            // index is written once: by the permutation or counting-sort slot that owns it).
            unsafe { self.0.add(index).write(value) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sorts_order_largest_first_ties_by_index() {
        let lengths = [3, 7, 3, 1, 7, 10];
        let expected = [5, 1, 4, 0, 2, 3];
        let sorted = vec![10, 7, 7, 3, 3, 1];
        assert_eq!(
            parallel::install(|| counting_sort(&lengths, 10)).unwrap(),
            (expected.to_vec(), sorted.clone())
        );
        assert_eq!(
            decreasing(&lengths, 1000).unwrap(),
            (expected.to_vec(), sorted)
        );
        assert_eq!(
            scatter(&[50, 10, 40, 0, 20, 30], &expected),
            [0, 10, 20, 30, 40, 50]
        );
    }
}
