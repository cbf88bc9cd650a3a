//! The processing order of the decreasing strategies: lengths largest first, ties by index.

use rayon::prelude::*;

use crate::error::Result;
use crate::memory::{huge_filled, huge_vec};
use crate::parallel;

use super::NS_PER_ITEM;

/// Below this many items per distinct possible length, a comparison sort beats a counting
/// sort's O(capacity) histogram.
const COUNTING_SORT_MIN_ITEMS_PER_LENGTH: usize = 1;

/// How to build the item order of the decreasing strategies. Only the results need it, not
/// the fit loop, so [`OrderPlan::item_order`] can run on another core meanwhile.
pub enum OrderPlan {
    /// A comparison sort made the order along the way.
    Ready(Vec<u32>),
    /// A counting sort: items come in chunks of `chunk_len`, and chunk `t`'s first item of
    /// length `capacity - k` goes to position `starts[t][k]`, its later ones right after.
    Counted {
        capacity: u32,
        chunk_len: usize,
        starts: Vec<Vec<u32>>,
    },
}

/// `lengths` (each in [1, capacity]) sorted decreasing, ties by increasing index, and the
/// plan of which item went where.
///
/// # Errors
/// When the pool cannot start.
pub fn decreasing(lengths: &[u32], capacity: u32) -> Result<(Vec<u32>, OrderPlan)> {
    if lengths.len() >= capacity as usize * COUNTING_SORT_MIN_ITEMS_PER_LENGTH {
        return parallel::install_sized(lengths.len(), NS_PER_ITEM, || {
            counting_sort(lengths, capacity)
        });
    }
    let mut order: Vec<u32> = (0..lengths.len() as u32).collect();
    // Keys are unique (the index breaks ties), so an unstable sort is deterministic.
    let sorted = parallel::install_sized(lengths.len(), NS_PER_ITEM, || {
        order.par_sort_unstable_by_key(|&i| (std::cmp::Reverse(lengths[i as usize]), i));
        order.par_iter().map(|&i| lengths[i as usize]).collect()
    })?;
    Ok((sorted, OrderPlan::Ready(order)))
}

impl OrderPlan {
    /// `order[k]`: the item of `lengths` (those the plan was made from) processed `k`-th.
    /// Runs on the current pool.
    pub fn item_order(self, lengths: &[u32]) -> Vec<u32> {
        let (capacity, chunk_len, mut starts) = match self {
            Self::Ready(order) => return order,
            Self::Counted {
                capacity,
                chunk_len,
                starts,
            } => (capacity, chunk_len, starts),
        };
        let mut order = huge_filled(lengths.len(), 0u32);
        let target = SharedSlice(order.as_mut_ptr(), order.len());
        lengths
            .par_chunks(chunk_len)
            .zip(starts.par_iter_mut())
            .enumerate()
            .for_each(|(chunk, (lengths, next))| {
                let first = (chunk * chunk_len) as u32;
                for (i, &length) in lengths.iter().enumerate() {
                    let slot = &mut next[(capacity - length) as usize];
                    target.write(*slot as usize, first + i as u32);
                    *slot += 1;
                }
            });
        order
    }
}

/// Stable counting sort on `capacity - length`: O(n + capacity) work, split over the pool
/// as per-chunk histograms (the result does not depend on the split).
fn counting_sort(lengths: &[u32], capacity: u32) -> (Vec<u32>, OrderPlan) {
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
    let plan = OrderPlan::Counted {
        capacity,
        chunk_len,
        starts,
    };
    (sorted, plan)
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
        let counted = parallel::install(|| counting_sort(&lengths, 10)).unwrap();
        // A capacity above the item count takes the comparison sort.
        let compared = decreasing(&lengths, 1000).unwrap();
        for (by_length, plan) in [counted, compared] {
            assert_eq!(by_length, sorted);
            let order = parallel::install(|| plan.item_order(&lengths)).unwrap();
            assert_eq!(order, expected);
        }
        assert_eq!(
            scatter(&[50, 10, 40, 0, 20, 30], &expected),
            [0, 10, 20, 30, 40, 50]
        );
    }

    #[test]
    fn counting_sort_order_spans_chunks() {
        // Several counting-sort chunks, so later chunks' items follow earlier ones' per length.
        let lengths: Vec<u32> = (0..3 * MIN_SORT_CHUNK as u32)
            .map(|i| 1 + (i * 7919) % 13)
            .collect();
        let mut expected: Vec<u32> = (0..lengths.len() as u32).collect();
        expected.sort_by_key(|&i| (std::cmp::Reverse(lengths[i as usize]), i));
        let (sorted, plan) = decreasing(&lengths, 13).unwrap();
        let order = parallel::install(|| plan.item_order(&lengths)).unwrap();
        assert_eq!(order, expected);
        let by_order: Vec<u32> = order.iter().map(|&i| lengths[i as usize]).collect();
        assert_eq!(sorted, by_order);
    }
}
