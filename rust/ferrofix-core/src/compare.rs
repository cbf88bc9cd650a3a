//! Tensor comparison statistics in one parallel pass: what `assert_close` judges.
//!
//! Invariants:
//! - Every element is read once, as f64, whatever the two element types (they may differ:
//!   a bf16 output against an f32 reference).
//! - Positions where either value is not finite are counted, not measured: they never enter
//!   the sums or the maximum. Both NaN, or the same infinity, is a match; anything else is a
//!   non-finite mismatch.
//! - Work is split into fixed chunks combined in index order, so the statistics (and the
//!   index of the largest difference: the first one on ties) do not depend on the thread
//!   count.
//! - Squares of finite f64 values past ~1.3e154 overflow, and below ~1e-154 they lose
//!   precision or vanish; a sum that overflowed, or is nonzero but that small, is taken
//!   again of the values times [`OVERFLOW_SCALE`] or [`UNDERFLOW_SCALE`], so the RMS is right
//!   at every magnitude (an inf RMS over an inf scale judged nothing, a vanished one passed
//!   anything). Each sum is rescaled on its own: a huge difference leaves the scale of a
//!   small `expected` exact.

use rayon::prelude::*;

use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::parallel;

/// Elements per parallel task.
const CHUNK: usize = 1 << 16;
/// Rough cost of comparing one element pair, for deciding whether a comparison is worth
/// waking the pool for.
const NS_PER_ELEMENT: u64 = 2;

/// Sums and extremes of `actual - expected` over the finite positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Number of elements compared.
    pub numel: u64,
    /// Σ (actual - expected)² over positions where both are finite.
    pub sum_sq_diff: f64,
    /// Σ expected² over the same positions.
    pub sum_sq_expected: f64,
    /// max |actual - expected| over the same positions (0 when there are none).
    pub max_abs_diff: f64,
    /// Flat index of the first position reaching `max_abs_diff`.
    pub max_index: u64,
    /// Positions where `actual` or `expected` is not finite.
    pub non_finite: u64,
    /// Of those, positions where the two differ (NaN against a number, opposite infinities).
    pub non_finite_mismatch: u64,
    /// `sum_sq_diff` is of the differences times this: 1, or [`OVERFLOW_SCALE`] or
    /// [`UNDERFLOW_SCALE`] when plain squares overflowed or underflowed.
    pub diff_scale: f64,
    /// The same for `sum_sq_expected`.
    pub expected_scale: f64,
}

/// 2^-600: finite f64 values (< 2^1024) become < 2^424, whose squares (< 2^848), summed over
/// up to 2^64 elements, stay finite; values this scaling pushes below f64's range are far too
/// small beside the huge ones to change the sums.
pub const OVERFLOW_SCALE: f64 = f64::from_bits((1023 - 600) << 52);

/// 2^600, for sums of squares below [`UNDERFLOW_LIMIT`]: then every term of the sum (a
/// difference, or an expected value) is below 2^-483, so scaled it stays below 2^117 and its
/// square far from overflow.
pub const UNDERFLOW_SCALE: f64 = f64::from_bits((1023 + 600) << 52);

/// Sums of squares below 2^-966 (~1e-291) are retaken scaled: squares there have lost bits
/// to the subnormal range, or vanished.
const UNDERFLOW_LIMIT: f64 = f64::from_bits((1023 - 966) << 52);

/// The factor a sum of squares must be retaken with, if any: it overflowed (only finite
/// pairs enter the sums, so finite squares did), or it is that small and nonzero, or zero
/// while `maybe_vanished` (some of its terms may be nonzero but too small to square).
fn rescale_for(sum: f64, maybe_vanished: bool) -> Option<f64> {
    if !sum.is_finite() {
        Some(OVERFLOW_SCALE)
    } else if sum < UNDERFLOW_LIMIT && (sum > 0.0 || maybe_vanished) {
        Some(UNDERFLOW_SCALE)
    } else {
        None
    }
}

impl Stats {
    const EMPTY: Stats = Stats {
        numel: 0,
        sum_sq_diff: 0.0,
        sum_sq_expected: 0.0,
        max_abs_diff: 0.0,
        max_index: 0,
        non_finite: 0,
        non_finite_mismatch: 0,
        diff_scale: 1.0,
        expected_scale: 1.0,
    };

    /// Positions that entered the sums.
    pub fn finite(&self) -> u64 {
        self.numel - self.non_finite
    }

    /// Root mean square of the difference over the finite positions.
    pub fn rms_diff(&self) -> f64 {
        (self.sum_sq_diff / self.finite().max(1) as f64).sqrt() / self.diff_scale
    }

    /// Root mean square of `expected` over the finite positions.
    pub fn rms_expected(&self) -> f64 {
        (self.sum_sq_expected / self.finite().max(1) as f64).sqrt() / self.expected_scale
    }

    /// `sqrt(mean(expected²) + eps²)`: the scale relative tolerances divide by.
    pub fn scale(&self, eps: f64) -> f64 {
        self.rms_expected().hypot(eps)
    }

    /// `self` followed by `later` (a chunk with higher indices).
    fn then(self, later: Stats) -> Stats {
        let later_wins = later.max_abs_diff > self.max_abs_diff;
        Stats {
            numel: self.numel + later.numel,
            sum_sq_diff: self.sum_sq_diff + later.sum_sq_diff,
            sum_sq_expected: self.sum_sq_expected + later.sum_sq_expected,
            max_abs_diff: self.max_abs_diff.max(later.max_abs_diff),
            max_index: if later_wins {
                later.max_index
            } else {
                self.max_index
            },
            non_finite: self.non_finite + later.non_finite,
            non_finite_mismatch: self.non_finite_mismatch + later.non_finite_mismatch,
            diff_scale: self.diff_scale,
            expected_scale: self.expected_scale,
        }
    }
}

/// Independent accumulators: the f64 sums would otherwise wait on one add's latency per
/// element; with eight lanes the compiler keeps them in vector registers.
const LANES: usize = 8;
/// Elements widened to f64 and checked at a time (two 2 KiB stack buffers).
const BLOCK: usize = 256;

/// The statistics of one chunk (`offset`: the flat index of its first element), computed
/// block by block.
///
/// The fast path computes a block's sums and largest difference without looking at
/// finiteness: a non-finite value turns its block's sums into inf or NaN, and only such a
/// block is redone element by element (as is one whose finite squares overflow). The first
/// position of a new maximum is looked up only in a block whose maximum beats the one so far.
#[inline(always)]
fn chunk_stats<A: Real, E: Real>(actual: &[A], expected: &[E], offset: u64) -> Stats {
    let mut stats = Stats::EMPTY;
    stats.numel = actual.len() as u64;
    let mut sum_sq_diff = [0.0_f64; LANES];
    let mut sum_sq_expected = [0.0_f64; LANES];
    let (mut a, mut e) = ([0.0_f64; BLOCK], [0.0_f64; BLOCK]);
    for (k, (a_block, e_block)) in actual.chunks(BLOCK).zip(expected.chunks(BLOCK)).enumerate() {
        let len = a_block.len();
        A::widen(a_block, &mut a[..len]);
        E::widen(e_block, &mut e[..len]);
        // Zeros past a short last block add nothing and never win the maximum.
        a[len..].fill(0.0);
        e[len..].fill(0.0);
        let mut block_diff = [0.0_f64; LANES];
        let mut block_expected = [0.0_f64; LANES];
        let mut block_max = [0.0_f64; LANES];
        for (a, e) in a.chunks_exact(LANES).zip(e.chunks_exact(LANES)) {
            for lane in 0..LANES {
                let d = a[lane] - e[lane];
                block_diff[lane] += d * d;
                block_expected[lane] += e[lane] * e[lane];
                let size = d.abs();
                block_max[lane] = if size > block_max[lane] {
                    size
                } else {
                    block_max[lane]
                };
            }
        }
        let start = offset + (k * BLOCK) as u64;
        let finite = block_diff
            .iter()
            .chain(&block_expected)
            .all(|v| v.is_finite());
        if !finite {
            slow_block(
                &a[..len],
                &e[..len],
                start,
                &mut stats,
                &mut sum_sq_diff,
                &mut sum_sq_expected,
            );
            continue;
        }
        for lane in 0..LANES {
            sum_sq_diff[lane] += block_diff[lane];
            sum_sq_expected[lane] += block_expected[lane];
        }
        let max = block_max
            .iter()
            .fold(0.0_f64, |m, &v| if v > m { v } else { m });
        if max > stats.max_abs_diff {
            // The first position reaching it (one exists: `max` is one of the differences).
            let at = a
                .iter()
                .zip(&e)
                .position(|(a, e)| (a - e).abs() == max)
                .unwrap_or(0);
            stats.max_abs_diff = max;
            stats.max_index = start + at as u64;
        }
    }
    stats.sum_sq_diff = sum_sq_diff.iter().sum();
    stats.sum_sq_expected = sum_sq_expected.iter().sum();
    stats
}

/// A block holding non-finite values (or overflowing squares), element by element: finite
/// pairs enter the sums and the maximum, the others are counted.
#[cold]
fn slow_block(
    a: &[f64],
    e: &[f64],
    start: u64,
    stats: &mut Stats,
    sum_sq_diff: &mut [f64; LANES],
    sum_sq_expected: &mut [f64; LANES],
) {
    for (i, (&a, &e)) in a.iter().zip(e).enumerate() {
        if a.is_finite() && e.is_finite() {
            let d = a - e;
            sum_sq_diff[i % LANES] += d * d;
            sum_sq_expected[i % LANES] += e * e;
            if d.abs() > stats.max_abs_diff {
                stats.max_abs_diff = d.abs();
                stats.max_index = start + i as u64;
            }
        } else {
            stats.non_finite += 1;
            // Both NaN, or the same infinity, is a match.
            if !(a.is_nan() && e.is_nan()) && a != e {
                stats.non_finite_mismatch += 1;
            }
        }
    }
}

/// [`chunk_stats`] compiled for AVX2: four f64 lanes per vector instead of SSE2's two.
///
/// # Safety
/// Only call on a CPU that supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chunk_stats_avx2<A: Real, E: Real>(actual: &[A], expected: &[E], offset: u64) -> Stats {
    chunk_stats(actual, expected, offset)
}

/// [`chunk_stats`] in the widest vectors the running CPU has; the same arithmetic in the
/// same order either way, so the same bits.
fn chunk_stats_dispatch<A: Real, E: Real>(actual: &[A], expected: &[E], offset: u64) -> Stats {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the running CPU supports AVX2, checked just above.
        return unsafe { chunk_stats_avx2(actual, expected, offset) };
    }
    chunk_stats(actual, expected, offset)
}

/// The statistics of `actual` against `expected` (same number of elements).
///
/// # Errors
/// [`Error::ShapeMismatch`] when the lengths differ.
pub fn compare<A: Real, E: Real>(actual: &[A], expected: &[E]) -> Result<Stats> {
    if actual.len() != expected.len() {
        return Err(Error::ShapeMismatch {
            arg: "actual",
            expected: format!("{} elements, like expected", expected.len()),
            got: format!("{} elements", actual.len()),
        });
    }
    let partials: Vec<Stats> = parallel::install_sized(actual.len(), NS_PER_ELEMENT, || {
        actual
            .par_chunks(CHUNK)
            .zip(expected.par_chunks(CHUNK))
            .enumerate()
            .map(|(k, (a, e))| chunk_stats_dispatch(a, e, (k * CHUNK) as u64))
            .collect()
    })?;
    let mut stats = partials.into_iter().fold(Stats::EMPTY, Stats::then);
    if let Some(scale) = rescale_for(stats.sum_sq_diff, stats.max_abs_diff > 0.0) {
        // Scaled exactly (`scale` is a power of two). Down before subtracting, as a - e may
        // itself overflow (1e308 - -1e308); up after it, as the differences are tiny but a
        // and e need not be (1e200 and 1e200 + 1e-184 scaled up are inf - inf).
        stats.sum_sq_diff = if scale < 1.0 {
            scaled_sum(actual, expected, |a, e| a * scale - e * scale)
        } else {
            scaled_sum(actual, expected, |a, e| (a - e) * scale)
        }?;
        stats.diff_scale = scale;
    }
    // A zero expected sum may be tiny values whose squares vanished (the scale must still be
    // exact with rms_eps = 0); all-zero expected data pays one more read for that.
    if let Some(scale) = rescale_for(stats.sum_sq_expected, true) {
        stats.sum_sq_expected = scaled_sum(actual, expected, |_, e| e * scale)?;
        stats.expected_scale = scale;
    }
    Ok(stats)
}

/// Σ term(a, e)² over the finite pairs (`term`: their scaled difference, or the scaled
/// `expected`), for sums whose plain squares overflow or underflow. Rare, so plain loops, in
/// the fixed chunks and order of [`compare`].
#[cold]
fn scaled_sum<A: Real, E: Real>(
    actual: &[A],
    expected: &[E],
    term: impl Fn(f64, f64) -> f64 + Sync,
) -> Result<f64> {
    let sums: Vec<f64> = parallel::install_sized(actual.len(), NS_PER_ELEMENT, || {
        actual
            .par_chunks(CHUNK)
            .zip(expected.par_chunks(CHUNK))
            .map(|(a, e)| {
                let mut sum = 0.0;
                for (&a, &e) in a.iter().zip(e) {
                    let (a, e) = (a.to_f64(), e.to_f64());
                    if a.is_finite() && e.is_finite() {
                        let value = term(a, e);
                        sum += value * value;
                    }
                }
                sum
            })
            .collect()
    })?;
    Ok(sums.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_statistics() {
        let actual = [1.0f32, 2.0, 3.5, f32::NAN, f32::INFINITY, 0.0];
        let expected = [1.0f64, 2.5, 3.0, f64::NAN, f64::INFINITY, f64::NAN];
        let stats = compare(&actual, &expected).unwrap_or(Stats::EMPTY);
        assert_eq!(stats.numel, 6);
        assert_eq!(stats.non_finite, 3);
        assert_eq!(stats.non_finite_mismatch, 1);
        assert_eq!(stats.sum_sq_diff, 0.5);
        assert_eq!(stats.sum_sq_expected, 1.0 + 6.25 + 9.0);
        assert_eq!((stats.max_abs_diff, stats.max_index), (0.5, 1));
        assert_eq!(stats.rms_diff(), (0.5f64 / 3.0).sqrt());
    }

    #[test]
    fn huge_values_get_finite_right_rms_instead_of_overflowing_squares() {
        // Squares of 1e200 overflow f64; the RMS must still be the RMS.
        let expected = [1e200, -3e200, 2e200, f64::NAN, 5.0];
        let actual = [1e200, -2e200, 2.5e200, f64::NAN, 5.0];
        let stats = compare(&actual, &expected).unwrap_or(Stats::EMPTY);
        assert_eq!(
            (stats.diff_scale, stats.expected_scale),
            (OVERFLOW_SCALE, OVERFLOW_SCALE)
        );
        let rms = |values: &[f64]| {
            (values.iter().map(|v| (v / 1e200).powi(2)).sum::<f64>() / 4.0).sqrt() * 1e200
        };
        let close = |got: f64, want: f64| (got - want).abs() <= 1e-14 * want;
        assert!(close(stats.rms_diff(), rms(&[0.0, 1e200, 0.5e200, 0.0])));
        assert!(close(
            stats.rms_expected(),
            rms(&[1e200, 3e200, 2e200, 5.0])
        ));
        assert!(close(stats.scale(1e-4), stats.rms_expected()));
        assert_eq!((stats.max_abs_diff, stats.max_index), (1e200, 1));
        assert_eq!((stats.non_finite, stats.non_finite_mismatch), (1, 0));
        // Ordinary values keep the plain sums.
        let plain = compare(&[1.0, 2.0], &[1.0, 4.0]).unwrap_or(Stats::EMPTY);
        assert_eq!((plain.diff_scale, plain.sum_sq_diff), (1.0, 4.0));
        // A huge difference against a small expected: the scale stays exact.
        let mixed = compare(&[1e200], &[1.0]).unwrap_or(Stats::EMPTY);
        assert_eq!(
            (mixed.diff_scale, mixed.expected_scale),
            (OVERFLOW_SCALE, 1.0)
        );
        assert_eq!(mixed.rms_expected(), 1.0);
        // Tiny values: squares below f64's range would vanish and pass anything.
        let tiny = compare(&[2e-200, 0.0], &[1e-200, 0.0]).unwrap_or(Stats::EMPTY);
        assert_eq!(
            (tiny.diff_scale, tiny.expected_scale),
            (UNDERFLOW_SCALE, UNDERFLOW_SCALE)
        );
        assert!(close(tiny.rms_diff(), 1e-200 / 2f64.sqrt()));
        assert!(close(tiny.rms_expected(), 1e-200 / 2f64.sqrt()));
        // Exact equality keeps the plain difference sum; tiny expected values still give
        // their exact scale.
        let equal = compare(&[0.0, 1e-300], &[0.0, 1e-300]).unwrap_or(Stats::EMPTY);
        assert_eq!((equal.diff_scale, equal.rms_diff()), (1.0, 0.0));
        assert!(close(equal.rms_expected(), 1e-300 / 2f64.sqrt()));
        // Huge equal values beside a tiny difference: scaled up, they must not become
        // inf - inf (the RMS was NaN).
        let beside_huge =
            compare(&[f64::MAX, 1e-200, -1e300], &[f64::MAX, 0.0, -1e300]).unwrap_or(Stats::EMPTY);
        assert_eq!(beside_huge.diff_scale, UNDERFLOW_SCALE);
        assert!(close(beside_huge.rms_diff(), 1e-200 / 3f64.sqrt()));
        // Opposite extremes: the difference itself is past f64; inf, not a pass.
        let extreme = compare(&[f64::MAX], &[-f64::MAX]).unwrap_or(Stats::EMPTY);
        assert_eq!(extreme.rms_diff(), f64::INFINITY);
        assert_eq!(extreme.max_abs_diff, f64::INFINITY);
    }

    /// The definition, one element at a time.
    fn plain_scan(actual: &[f64], expected: &[f64]) -> Stats {
        let mut stats = Stats::EMPTY;
        stats.numel = actual.len() as u64;
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            if a.is_finite() && e.is_finite() {
                let d = a - e;
                stats.sum_sq_diff += d * d;
                stats.sum_sq_expected += e * e;
                if d.abs() > stats.max_abs_diff {
                    stats.max_abs_diff = d.abs();
                    stats.max_index = i as u64;
                }
            } else {
                stats.non_finite += 1;
                if !(a.is_nan() && e.is_nan()) && a != e {
                    stats.non_finite_mismatch += 1;
                }
            }
        }
        stats
    }

    #[test]
    fn blocks_agree_with_the_plain_scan() {
        // Small integers: every sum is exact in any order, so the totals must be equal.
        let value = |i: usize, salt: usize| ((i * 7919 + salt) % 23) as f64 - 11.0;
        for len in [0, 1, 7, 255, 256, 257, 1000, 3 * BLOCK + 5] {
            let actual: Vec<f64> = (0..len).map(|i| value(i, 3)).collect();
            let expected: Vec<f64> = (0..len).map(|i| value(i, 11)).collect();
            let mut cases = vec![(actual.clone(), expected.clone())];
            // Non-finite values in the first block, the last one and the short tail.
            let mut holes = (actual.clone(), expected.clone());
            for (k, at) in [3, 260, 519, len.saturating_sub(2)].into_iter().enumerate() {
                if at < len {
                    match k % 4 {
                        0 => holes.0[at] = f64::NAN,
                        1 => (holes.0[at], holes.1[at]) = (f64::INFINITY, f64::INFINITY),
                        2 => holes.1[at] = f64::NEG_INFINITY,
                        _ => (holes.0[at], holes.1[at]) = (f64::NAN, f64::NAN),
                    }
                }
            }
            cases.push(holes);
            // Finite values whose difference and squares overflow.
            let mut huge = (actual.clone(), expected.clone());
            if len > 300 {
                (huge.0[300], huge.1[300]) = (1e308, -1e308);
            }
            cases.push(huge);
            // Equal differences everywhere: the maximum's first position is 0... or the
            // first one after a block of zeros.
            cases.push((vec![2.0; len], vec![0.5; len]));
            let mut late = (vec![1.0; len], vec![1.0; len]);
            for at in (len / 2..len).step_by(3) {
                late.0[at] = 4.0;
            }
            cases.push(late);
            for (a, e) in cases {
                let want = plain_scan(&a, &e);
                let portable = chunk_stats(&a, &e, 0);
                let got = chunk_stats_dispatch(&a, &e, 0);
                assert_eq!(
                    format!("{portable:?}"),
                    format!("{got:?}"),
                    "same bits, len {len}"
                );
                assert_eq!(got.numel, want.numel, "len {len}");
                assert_eq!(got.non_finite, want.non_finite, "len {len}");
                assert_eq!(
                    got.non_finite_mismatch, want.non_finite_mismatch,
                    "len {len}"
                );
                assert_eq!(got.max_abs_diff, want.max_abs_diff, "len {len}");
                assert_eq!(got.max_index, want.max_index, "len {len}");
                assert_eq!(got.sum_sq_diff, want.sum_sq_diff, "len {len}");
                assert_eq!(got.sum_sq_expected, want.sum_sq_expected, "len {len}");
            }
        }
    }

    #[test]
    fn lengths_must_match() {
        assert!(matches!(
            compare(&[1.0f32], &[1.0f32, 2.0]),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn chunking_does_not_change_the_result() {
        let n = 3 * CHUNK + 17;
        let actual: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let expected: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let whole = chunk_stats(&actual, &expected, 0);
        let split = compare(&actual, &expected).unwrap_or(Stats::EMPTY);
        assert_eq!(whole.max_index, split.max_index);
        assert_eq!(whole.max_abs_diff, split.max_abs_diff);
        assert!((whole.sum_sq_diff - split.sum_sq_diff).abs() <= 1e-12 * whole.sum_sq_diff);
    }
}
