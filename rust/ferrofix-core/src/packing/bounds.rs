//! Lower bounds on the number of bins any packing needs.
//!
//! L1 = ceil(sum / C). L2 is Martello and Toth's bound (1990): for each alpha in
//! {0} ∪ {distinct lengths <= C/2}, items longer than C - alpha need a bin each (J1), items in
//! (C/2, C - alpha] need a bin each and no two share one (J2), and items in [alpha, C/2] (J3)
//! need whatever the J2 bins cannot absorb:
//! `L(alpha) = |J1| + |J2| + max(0, ceil((sum J3 - (|J2| C - sum J2)) / C))`, L2 = max L(alpha).
//! L1 <= L2 <= the optimum.

use rayon::prelude::*;

use crate::error::Result;
use crate::parallel;

/// `(L1, L2)` for item `lengths`, each in [1, capacity].
///
/// O(n log n): one sort, then O(log n) per candidate alpha.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] naming `lengths` for a length outside [1, capacity], or when the
/// pool cannot start.
pub fn lower_bounds(lengths: &[u32], capacity: u32) -> Result<(u64, u64)> {
    super::check_item_lengths(lengths, capacity)?;
    let c = u64::from(capacity);
    let mut sorted = lengths.to_vec();
    parallel::install_sized(sorted.len(), super::NS_PER_ITEM, || {
        sorted.par_sort_unstable()
    })?;
    let mut prefix = Vec::with_capacity(sorted.len() + 1);
    prefix.push(0u64);
    for &v in &sorted {
        prefix.push(prefix[prefix.len() - 1] + u64::from(v));
    }
    let total = prefix[sorted.len()];
    let l1 = total.div_ceil(c);

    let n = sorted.len();
    // Number of lengths <= v, and the sum of lengths in [lo, hi).
    let at_most = |v: u64| sorted.partition_point(|&w| u64::from(w) <= v);
    let sum = |lo: usize, hi: usize| prefix[hi] - prefix[lo];
    let half = c / 2;
    let half_end = at_most(half);
    let bound = |alpha: u64, alpha_start: usize| {
        let j2_end = at_most(c - alpha);
        let j1 = (n - j2_end) as u64;
        let j2 = (j2_end - half_end) as u64;
        let j2_room = j2 * c - sum(half_end, j2_end);
        let j3 = sum(alpha_start, half_end);
        j1 + j2 + j3.saturating_sub(j2_room).div_ceil(c)
    };
    let mut l2 = l1.max(bound(0, 0));
    // Every distinct length <= C/2 as alpha; `start` is its first index in `sorted`.
    let mut start = 0;
    while start < half_end {
        let alpha = u64::from(sorted[start]);
        l2 = l2.max(bound(alpha, start));
        start = sorted.partition_point(|&w| u64::from(w) <= alpha);
    }
    Ok((l1, l2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// L2 straight from the definition, over every alpha in [0, C/2].
    fn l2_by_definition(lengths: &[u32], c: u64) -> u64 {
        (0..=c / 2)
            .map(|alpha| {
                let j1 = lengths
                    .iter()
                    .filter(|&&w| u64::from(w) > c - alpha)
                    .count() as u64;
                let j2: Vec<u64> = lengths
                    .iter()
                    .map(|&w| u64::from(w))
                    .filter(|&w| 2 * w > c && w <= c - alpha)
                    .collect();
                let j3: u64 = lengths
                    .iter()
                    .map(|&w| u64::from(w))
                    .filter(|&w| w >= alpha && 2 * w <= c)
                    .sum();
                let room = j2.len() as u64 * c - j2.iter().sum::<u64>();
                j1 + j2.len() as u64 + j3.saturating_sub(room).div_ceil(c)
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn matches_the_definition() {
        let cases: [(&[u32], u32); 6] = [
            (&[], 10),
            (&[6, 6, 6], 10),
            (&[6, 6, 6, 2, 2, 2, 3], 10),
            (&[5, 5, 5, 5, 1], 10),
            (&[99, 50, 50, 49, 1, 1, 30, 20, 70], 100),
            (&[1; 7], 1),
        ];
        for (lengths, c) in cases {
            let (l1, l2) = lower_bounds(lengths, c).unwrap();
            assert_eq!(
                l2,
                l2_by_definition(lengths, u64::from(c)).max(l1),
                "{lengths:?}"
            );
            assert!(l1 <= l2);
        }
        // Three items over half the capacity need three bins though L1 says two.
        assert_eq!(lower_bounds(&[6, 6, 6], 10).unwrap(), (2, 3));
    }
}
