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

use rayon::prelude::*;

use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::parallel;

/// Elements per parallel task.
const CHUNK: usize = 1 << 16;

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
    };

    /// Positions that entered the sums.
    pub fn finite(&self) -> u64 {
        self.numel - self.non_finite
    }

    /// Root mean square of the difference over the finite positions.
    pub fn rms_diff(&self) -> f64 {
        (self.sum_sq_diff / self.finite().max(1) as f64).sqrt()
    }

    /// `sqrt(mean(expected²) + eps²)`: the scale relative tolerances divide by.
    pub fn scale(&self, eps: f64) -> f64 {
        (self.sum_sq_expected / self.finite().max(1) as f64 + eps * eps).sqrt()
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
        }
    }
}

fn chunk_stats<A: Real, E: Real>(actual: &[A], expected: &[E], offset: u64) -> Stats {
    let mut stats = Stats::EMPTY;
    stats.numel = actual.len() as u64;
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let (a, e) = (a.to_f64(), e.to_f64());
        if a.is_finite() && e.is_finite() {
            let d = a - e;
            stats.sum_sq_diff += d * d;
            stats.sum_sq_expected += e * e;
            if d.abs() > stats.max_abs_diff {
                stats.max_abs_diff = d.abs();
                stats.max_index = offset + i as u64;
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
    let partials: Vec<Stats> = parallel::install(|| {
        actual
            .par_chunks(CHUNK)
            .zip(expected.par_chunks(CHUNK))
            .enumerate()
            .map(|(k, (a, e))| chunk_stats(a, e, (k * CHUNK) as u64))
            .collect()
    })?;
    Ok(partials.into_iter().fold(Stats::EMPTY, Stats::then))
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
