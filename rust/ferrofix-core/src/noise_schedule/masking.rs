//! Discrete forward processes of masked and uniform diffusion LMs: each token is replaced
//! with probability p (per batch, per row or per token), unless protected.
//!
//! Invariants:
//! - the decision for token (row, position) is a pure function of (seed, row, position):
//!   32 bits of Philox block `(row << 32) | position / 4`, word `position % 4`, compared
//!   with round(p·2^32). So results never depend on the thread count, on chunking, or on the
//!   sequence length (a longer row keeps its prefix's decisions); p = 0 never replaces and
//!   p = 1 always does;
//! - uniform corruption draws its replacement id from a second stream with Lemire's exact
//!   bounded sampler, so the decision and the new id are independent;
//! - protected tokens (by position or by id) are never replaced and never flagged.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::bit_select::{self, STEP};
use crate::error::{Error, Result};
use crate::rng::{CounterRng, LANES};
use crate::{memory, parallel};

/// Stream of the replace/keep decisions of [`mask_tokens`] ("mask").
pub const MASK_STREAM: u32 = 0x6d61_736b;
/// Stream of the replace/keep decisions of [`uniform_corrupt`] ("unif").
pub const CORRUPT_STREAM: u32 = 0x756e_6966;
/// Stream of [`uniform_corrupt`]'s replacement ids ("repl").
pub const CORRUPT_VALUE_STREAM: u32 = 0x7265_706c;
/// 2^32: decisions compare 32 random bits with p·2^32.
const SCALE: f64 = 4_294_967_296.0;
/// Rough cost of deciding one token (a generator draw, a compare, a select), for deciding
/// whether a batch is worth waking the pool for.
const NS_PER_TOKEN: u64 = 4;

/// Token-id element types (int32, int64).
pub trait TokenId: Copy + Default + Send + Sync + Into<i64> + TryFrom<i64> + 'static {
    /// The dtype name in messages.
    const NAME: &'static str;
    /// The smallest and largest id.
    const RANGE: (i64, i64);
    /// `out[t] = if bit t of bits { value } else { ids[t] }` for every `t < ids.len() <= 32`.
    fn select(out: &mut [MaybeUninit<Self>], ids: &[Self], bits: u32, value: Self);
}

impl TokenId for i32 {
    const NAME: &'static str = "int32";
    const RANGE: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);
    fn select(out: &mut [MaybeUninit<Self>], ids: &[Self], bits: u32, value: Self) {
        bit_select::select_i32(out, ids, bits, value);
    }
}

impl TokenId for i64 {
    const NAME: &'static str = "int64";
    const RANGE: (i64, i64) = (i64::MIN, i64::MAX);
    fn select(out: &mut [MaybeUninit<Self>], ids: &[Self], bits: u32, value: Self) {
        bit_select::select_i64(out, ids, bits, value);
    }
}

/// Tokens that are never replaced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Protect<'a> {
    /// Every token may be replaced.
    #[default]
    Nothing,
    /// `true` marks a protected position; same shape as the ids.
    Positions(&'a [bool], &'a [usize]),
    /// These ids are never replaced (padding, BOS, ...).
    Ids(Vec<i64>),
}

/// Where a token's probability comes from.
#[derive(Debug, Clone, Copy)]
enum Probabilities<'a> {
    Scalar(f64),
    PerRow(&'a [f64]),
    PerToken(&'a [f64]),
}

/// A replacement process over a (rows, columns) grid of ids.
struct Grid {
    rows: usize,
    columns: usize,
}

impl Grid {
    /// Leading dimensions are rows; the last is positions. A 0-d shape is one token.
    fn new(shape: &[usize]) -> Result<Self> {
        let columns = shape.last().copied().unwrap_or(1);
        let rows = shape[..shape.len().saturating_sub(1)].iter().product();
        // Decision counters hold the row in 32 bits and position / 4 in 30 bits.
        if u32::try_from(rows).is_err() || u32::try_from(columns).is_err() {
            return Err(Error::ShapeMismatch {
                arg: "input_ids",
                expected: "fewer than 2**32 rows and positions".into(),
                got: format!("{shape:?}"),
            });
        }
        Ok(Self { rows, columns })
    }
}

fn probabilities<'a>(
    arg: &'static str,
    values: &'a [f64],
    shape: &[usize],
    ids_shape: &[usize],
    grid: &Grid,
) -> Result<Probabilities<'a>> {
    if let Some(index) = values.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(Error::invalid(
            arg,
            format!("must be in [0, 1], got {} at index {index}", values[index]),
        ));
    }
    let per_row = [grid.rows];
    let per_row_column = [grid.rows, 1];
    Ok(match shape {
        [] | [1] if values.len() == 1 => Probabilities::Scalar(values[0]),
        s if s == ids_shape => Probabilities::PerToken(values),
        s if ids_shape.len() == 2 && (s == per_row || s == per_row_column) => {
            Probabilities::PerRow(values)
        }
        _ => {
            return Err(Error::ShapeMismatch {
                arg,
                expected: format!(
                    "a scalar, (B,) or (B, 1) with B = {} rows, or the ids' shape {ids_shape:?}",
                    grid.rows
                ),
                got: format!("{shape:?}"),
            });
        }
    })
}

fn threshold(p: f64) -> u64 {
    // p ∈ [0, 1], so the product is in [0, 2^32]: exact for p = 0 and p = 1.
    (p * SCALE).round() as u64
}

/// The core of both processes: decide per token, then `replace(row, position)` the chosen
/// ones. Returns the new ids and which tokens were replaced.
fn forward_process<T: TokenId>(
    ids: &[T],
    ids_shape: &[usize],
    (arg, probs, prob_shape): (&'static str, &[f64], &[usize]),
    protect: &Protect<'_>,
    seed: u64,
    stream: u32,
    replacement: Replacement<T>,
) -> Result<(Vec<T>, Vec<bool>)> {
    let grid = Grid::new(ids_shape)?;
    if grid.rows * grid.columns != ids.len() {
        return Err(Error::ShapeMismatch {
            arg: "input_ids",
            expected: format!(
                "{} elements for shape {ids_shape:?}",
                grid.rows * grid.columns
            ),
            got: format!("{}", ids.len()),
        });
    }
    let probs = probabilities(arg, probs, prob_shape, ids_shape, &grid)?;
    let positions = match protect {
        Protect::Positions(flags, shape) => {
            if *shape != ids_shape {
                return Err(Error::ShapeMismatch {
                    arg: "protect",
                    expected: format!("{ids_shape:?} (the ids' shape)"),
                    got: format!("{shape:?}"),
                });
            }
            Some(*flags)
        }
        _ => None,
    };
    let protected_ids: &[i64] = match protect {
        Protect::Ids(list) => list,
        _ => &[],
    };
    let rng = CounterRng::new(seed, stream);
    if grid.columns == 0 {
        return Ok((ids.to_vec(), vec![false; ids.len()]));
    }
    let rules = Rules {
        probs,
        positions,
        protected_ids,
    };
    // Uninitialised and advised for huge pages: the workers fault the pages in as they
    // write every element, with no zeroing pass before.
    let mut out: Vec<T> = memory::huge_vec(ids.len());
    let mut replaced: Vec<bool> = memory::huge_vec(ids.len());
    let columns = grid.columns;
    parallel::install_sized(ids.len(), NS_PER_TOKEN, || {
        out.spare_capacity_mut()[..ids.len()]
            .par_chunks_mut(columns)
            .zip(replaced.spare_capacity_mut()[..ids.len()].par_chunks_mut(columns))
            .zip(ids.par_chunks(columns))
            .enumerate()
            .for_each(|(row, ((out, flags), ids))| {
                let row = Row {
                    index: row,
                    base: row * columns,
                    ids,
                    out,
                    flags,
                };
                process_row(row, &rng, &rules, &replacement);
            });
    })?;
    // SAFETY: the rows cover [0, len) and each wrote every one of its elements.
    unsafe {
        out.set_len(ids.len());
        replaced.set_len(ids.len());
    }
    Ok((out, replaced))
}

/// What a replaced token becomes.
enum Replacement<T> {
    /// One id for every replaced token (masking), written with a branch-free select.
    Constant(T),
    /// An id below `range` drawn from `values` at the token's decision counter (uniform
    /// corruption).
    Uniform { values: CounterRng, range: u64 },
}

/// A step with at least 1/DENSE_STEP of its tokens replaced draws every token's id at once
/// (eight Philox blocks per vector step); a sparser one draws only the replaced tokens',
/// one scalar block each. Either way a token's id depends on its counter alone.
const DENSE_STEP: usize = 8;

/// Who may be replaced and how likely.
struct Rules<'a> {
    probs: Probabilities<'a>,
    positions: Option<&'a [bool]>,
    protected_ids: &'a [i64],
}

/// One row of the grid: its ids and outputs, and where it sits in the flat layout.
struct Row<'a, T> {
    /// The row number: the high half of every decision counter.
    index: usize,
    /// Flat index of the row's first token (for per-token inputs).
    base: usize,
    ids: &'a [T],
    out: &'a mut [MaybeUninit<T>],
    flags: &'a mut [MaybeUninit<bool>],
}

// A step's 32 decisions are one call of the generator's vector path.
const _: () = assert!(STEP == 4 * LANES);

fn process_row<T: TokenId>(
    mut row: Row<'_, T>,
    rng: &CounterRng,
    rules: &Rules<'_>,
    replacement: &Replacement<T>,
) {
    let row_limit = match rules.probs {
        Probabilities::Scalar(p) => threshold(p),
        Probabilities::PerRow(p) => threshold(p[row.index]),
        Probabilities::PerToken(_) => 0,
    };
    let mut start = 0;
    while start < row.ids.len() {
        let n = STEP.min(row.ids.len() - start);
        // A constant count for whole steps lets the compiler unroll and vectorise them.
        if n == STEP {
            step(&mut row, start, STEP, rng, rules, row_limit, replacement);
        } else {
            step(&mut row, start, n, rng, rules, row_limit, replacement);
        }
        start += STEP;
    }
}

/// Decide and write tokens `start..start + n` of the row (`start` a multiple of STEP).
#[inline(always)]
fn step<T: TokenId>(
    row: &mut Row<'_, T>,
    start: usize,
    n: usize,
    rng: &CounterRng,
    rules: &Rules<'_>,
    row_limit: u64,
    replacement: &Replacement<T>,
) {
    let counter_row = (row.index as u64) << 32;
    let first_block = counter_row | (start / 4) as u64;
    let flat = row.base + start..row.base + start + n;
    let ids = &row.ids[start..start + n];
    // Bit t: token start + t is replaced.
    let mut hits = match rules.probs {
        Probabilities::PerToken(p) => {
            // Position p takes word p % 4 of block p / 4.
            let words: [[u32; 4]; LANES] =
                std::array::from_fn(|l| rng.block(first_block + l as u64, 0));
            p[flat.clone()]
                .iter()
                .enumerate()
                .fold(0u32, |bits, (t, &p)| {
                    bits | (u32::from(u64::from(words[t / 4][t % 4]) < threshold(p)) << t)
                })
        }
        _ => rng.below_bits(first_block, row_limit),
    };
    if n < STEP {
        hits &= (1u32 << n) - 1;
    }
    if let Some(protected) = rules.positions {
        for (t, &protected) in protected[flat].iter().enumerate() {
            hits &= !(u32::from(protected) << t);
        }
    }
    if !rules.protected_ids.is_empty() {
        for (t, &id) in ids.iter().enumerate() {
            let keep = rules.protected_ids.binary_search(&id.into()).is_ok();
            hits &= !(u32::from(keep) << t);
        }
    }
    let out = &mut row.out[start..start + n];
    match replacement {
        Replacement::Constant(value) => T::select(out, ids, hits, *value),
        Replacement::Uniform { values, range } => {
            let first = counter_row | start as u64;
            // The draw is below vocab_size, which uniform_corrupt checked fits T.
            let to_id = |draw: u64| T::try_from(draw as i64).unwrap_or_default();
            let mut drawn = [T::default(); STEP];
            if hits.count_ones() as usize * DENSE_STEP >= n {
                values.below_into(first, *range, &mut drawn[..n], to_id);
            } else {
                let mut rest = hits;
                while rest != 0 {
                    let t = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    drawn[t] = to_id(values.below_at(first + t as u64, *range));
                }
            }
            for (t, (out, (&source, &new))) in
                out.iter_mut().zip(ids.iter().zip(&drawn)).enumerate()
            {
                out.write(if (hits >> t) & 1 != 0 { new } else { source });
            }
        }
    }
    bit_select::write_flags(&mut row.flags[start..start + n], hits);
}

fn sorted_ids(protect: Protect<'_>) -> Protect<'_> {
    match protect {
        Protect::Ids(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            Protect::Ids(ids)
        }
        other => other,
    }
}

/// Replace each unprotected token with `mask_token_id` with probability `mask_prob`
/// (a scalar, one per row, or one per token). Returns the noised ids and the mask of
/// replaced tokens, both in the ids' layout.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `mask_prob` (outside [0, 1] or NaN, first bad index) or
/// `mask_token_id` (outside the ids' dtype); [`Error::ShapeMismatch`] naming `mask_prob` or
/// `protect` when their shape does not fit the ids'.
pub fn mask_tokens<T: TokenId>(
    ids: &[T],
    ids_shape: &[usize],
    (mask_prob, prob_shape): (&[f64], &[usize]),
    mask_token_id: i128,
    seed: u64,
    protect: Protect<'_>,
) -> Result<(Vec<T>, Vec<bool>)> {
    let fitting = i64::try_from(mask_token_id)
        .ok()
        .and_then(|id| T::try_from(id).ok());
    let mask = fitting.ok_or_else(|| {
        Error::invalid(
            "mask_token_id",
            format!(
                "must fit the ids' dtype {} [{}, {}], got {mask_token_id}",
                T::NAME,
                T::RANGE.0,
                T::RANGE.1
            ),
        )
    })?;
    forward_process(
        ids,
        ids_shape,
        ("mask_prob", mask_prob, prob_shape),
        &sorted_ids(protect),
        seed,
        MASK_STREAM,
        Replacement::Constant(mask),
    )
}

/// Replace each unprotected token with probability `corrupt_prob` by an id drawn uniformly
/// from [0, vocab_size) (SEDD's uniform transition; the draw may equal the old id). Returns
/// the corrupted ids and the mask of resampled tokens.
///
/// # Errors
/// As [`mask_tokens`], naming `corrupt_prob`; [`Error::InvalidArgument`] naming `vocab_size`
/// when it is < 1 or larger than the ids' dtype can hold.
pub fn uniform_corrupt<T: TokenId>(
    ids: &[T],
    ids_shape: &[usize],
    (corrupt_prob, prob_shape): (&[f64], &[usize]),
    vocab_size: i128,
    seed: u64,
    protect: Protect<'_>,
) -> Result<(Vec<T>, Vec<bool>)> {
    let max_vocab = i128::from(T::RANGE.1) + 1;
    if vocab_size < 1 || vocab_size > max_vocab {
        return Err(Error::invalid(
            "vocab_size",
            format!(
                "must be in [1, {max_vocab}] for {} ids, got {vocab_size}",
                T::NAME
            ),
        ));
    }
    forward_process(
        ids,
        ids_shape,
        ("corrupt_prob", corrupt_prob, prob_shape),
        &sorted_ids(protect),
        seed,
        CORRUPT_STREAM,
        Replacement::Uniform {
            values: CounterRng::new(seed, CORRUPT_VALUE_STREAM),
            range: vocab_size as u64,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_zero_and_one_are_exact_and_protection_holds() {
        let ids: Vec<i64> = (0..64).collect();
        let shape = [4, 16];
        let (same, none) =
            mask_tokens(&ids, &shape, (&[0.0], &[]), 99, 1, Protect::Nothing).unwrap();
        assert_eq!(same, ids);
        assert!(none.iter().all(|&m| !m));
        let (all, mask) =
            mask_tokens(&ids, &shape, (&[1.0], &[]), 99, 1, Protect::Ids(vec![5, 0])).unwrap();
        for (i, (&id, &m)) in all.iter().zip(&mask).enumerate() {
            let protected = i == 0 || i == 5;
            assert_eq!(m, !protected);
            assert_eq!(id, if protected { i as i64 } else { 99 });
        }
    }

    #[test]
    fn decisions_do_not_depend_on_row_length() {
        let long: Vec<i32> = vec![7; 3 * 40];
        let short: Vec<i32> = vec![7; 3 * 13];
        let p = [0.5, 0.3, 0.9];
        let (_, a) = mask_tokens(&long, &[3, 40], (&p, &[3]), 0, 42, Protect::Nothing).unwrap();
        let (_, b) = mask_tokens(&short, &[3, 13], (&p, &[3]), 0, 42, Protect::Nothing).unwrap();
        for row in 0..3 {
            assert_eq!(a[row * 40..row * 40 + 13], b[row * 13..row * 13 + 13]);
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let ids = [1i32; 6];
        let err = mask_tokens(&ids, &[2, 3], (&[0.5, 1.5], &[2]), 0, 0, Protect::Nothing);
        assert_eq!(
            err.unwrap_err().to_string(),
            "mask_prob: must be in [0, 1], got 1.5 at index 1"
        );
        let err = mask_tokens(&ids, &[2, 3], (&[0.5; 3], &[3]), 0, 0, Protect::Nothing);
        assert!(matches!(
            err,
            Err(Error::ShapeMismatch {
                arg: "mask_prob",
                ..
            })
        ));
        let err = mask_tokens(&ids, &[2, 3], (&[0.5], &[]), 1 << 40, 0, Protect::Nothing);
        assert!(
            err.unwrap_err()
                .to_string()
                .starts_with("mask_token_id: must fit")
        );
        let err = uniform_corrupt(&ids, &[2, 3], (&[0.5], &[]), 0, 0, Protect::Nothing);
        assert!(
            err.unwrap_err()
                .to_string()
                .starts_with("vocab_size: must be in [1, 2147483648]")
        );
    }

    #[test]
    fn uniform_corruption_stays_in_the_vocabulary() {
        let ids = vec![3i64; 10_000];
        let (out, flags) =
            uniform_corrupt(&ids, &[10_000], (&[1.0], &[]), 5, 9, Protect::Nothing).unwrap();
        assert!(flags.iter().all(|&f| f));
        assert!(out.iter().all(|&v| (0..5).contains(&v)));
        for v in 0..5 {
            assert!(out.iter().filter(|&&x| x == v).count() > 1_800);
        }
    }
}
