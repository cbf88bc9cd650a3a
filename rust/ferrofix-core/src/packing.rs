//! Bin-packing of integer lengths into fixed-capacity bins, and the packed batches and
//! invariant checks built on it.
//!
//! Invariants:
//! - Every strategy is exact: it makes the same choice as the obvious quadratic loop (scan the
//!   open bins in index order; ties between equally good bins go to the lowest index), so an
//!   assignment can be checked against a ten-line reference.
//! - Decreasing strategies sort by length, largest first, ties by input index (stable).
//! - Items are placed in processing order; an item's offset in its bin is the bin's load just
//!   before it arrived, and a bin lists its items in that same order.
//! - Lengths are validated here, once: each >= 1, and no longer than the capacity unless the
//!   overflow policy says how to cut it.

/// Packed token batches built from a packing.
pub mod batch;
/// Lower bounds on the number of bins.
pub mod bounds;
/// The packed-batch invariant checker.
pub mod check;
mod free_space;
mod order;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::memory::{allocation_refused, check_outputs_fit, huge_filled, huge_vec, try_huge_vec};
use crate::parallel;
use free_space::FreeSpace;
use std::sync::atomic::{AtomicBool, Ordering};

/// How the next bin is chosen for an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Input order; only the most recently opened bin is considered.
    NextFit,
    /// Input order; the lowest-index bin that fits.
    FirstFit,
    /// Input order; the fitting bin with the least free space.
    BestFit,
    /// First fit over lengths sorted decreasing.
    FirstFitDecreasing,
    /// Best fit over lengths sorted decreasing.
    BestFitDecreasing,
    /// Over lengths sorted decreasing, the fitting bin with the most free space.
    WorstFitDecreasing,
}

/// Which fitting bin a strategy takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    First,
    Best,
    Worst,
}

impl Strategy {
    /// The names `parse` accepts, as listed in error messages.
    pub const NAMES: &'static str = "'next_fit', 'first_fit', 'best_fit', 'ffd', 'bfd', 'wfd'";

    /// Parse a strategy name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `strategy` and the allowed values.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "next_fit" => Self::NextFit,
            "first_fit" => Self::FirstFit,
            "best_fit" => Self::BestFit,
            "ffd" => Self::FirstFitDecreasing,
            "bfd" => Self::BestFitDecreasing,
            "wfd" => Self::WorstFitDecreasing,
            _ => {
                return Err(Error::invalid(
                    "strategy",
                    format!("must be one of {}, got {name:?}", Self::NAMES),
                ));
            }
        })
    }

    fn decreasing(self) -> bool {
        matches!(
            self,
            Self::FirstFitDecreasing | Self::BestFitDecreasing | Self::WorstFitDecreasing
        )
    }

    fn rule(self) -> Option<Rule> {
        match self {
            Self::NextFit => None,
            Self::FirstFit | Self::FirstFitDecreasing => Some(Rule::First),
            Self::BestFit | Self::BestFitDecreasing => Some(Rule::Best),
            Self::WorstFitDecreasing => Some(Rule::Worst),
        }
    }
}

/// What to do with a length greater than the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse, naming the first offending index.
    Error,
    /// Keep the first `capacity` units.
    Truncate,
    /// Cut into consecutive chunks of at most `capacity`, each packed as its own item.
    Split,
}

impl Overflow {
    /// Parse an overflow policy name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `overflow` and the allowed values.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "error" => Self::Error,
            "truncate" => Self::Truncate,
            "split" => Self::Split,
            _ => {
                return Err(Error::invalid(
                    "overflow",
                    format!("must be one of 'error', 'truncate', 'split', got {name:?}"),
                ));
            }
        })
    }
}

/// An integer type lengths may arrive in.
pub trait Length: Copy + Send + Sync {
    /// The value, widened.
    fn value(self) -> i64;
}

impl Length for i32 {
    fn value(self) -> i64 {
        i64::from(self)
    }
}

impl Length for i64 {
    fn value(self) -> i64 {
        self
    }
}

/// Validate a capacity: an integer in [1, 2**31 - 1] (offsets are int32).
///
/// # Errors
/// [`Error::InvalidArgument`] naming `capacity`.
pub fn check_capacity(capacity: i64) -> Result<u32> {
    if (1..=i64::from(i32::MAX)).contains(&capacity) {
        Ok(capacity as u32)
    } else {
        Err(Error::invalid(
            "capacity",
            format!("must be an integer in [1, 2**31 - 1], got {capacity}"),
        ))
    }
}

/// The items a list of lengths becomes under an overflow policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Items {
    /// Each item's length, in [1, capacity].
    pub lengths: Vec<u32>,
    /// For `split`: the source index and offset in the source of each item. `None` when item
    /// `i` is source `i` from offset 0 (`error` and `truncate`).
    pub sources: Option<(Vec<i32>, Vec<i64>)>,
}

impl Items {
    /// The source index and offset of item `i`.
    pub fn source(&self, i: usize) -> (usize, i64) {
        match &self.sources {
            Some((source, offset)) => (source[i] as usize, offset[i]),
            None => (i, 0),
        }
    }
}

const MAX_ITEMS: usize = i32::MAX as usize;
/// Rough cost of one item in one step of a packing (a sort, the fit loop, the scatters), for
/// deciding whether a step is worth waking the pool for.
pub(crate) const NS_PER_ITEM: u64 = 20;
/// Memory one split piece takes at the peak of a packing: its length, source and offset, and
/// its place in the outputs and working arrays (measured 48-56 bytes, rounded up).
const SPLIT_BYTES_PER_PIECE: usize = 64;

/// Turn `lengths` into items of at most `capacity`, following `overflow`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `lengths` for a length < 1, for a length over the
/// capacity under [`Overflow::Error`], or when there would be more than 2**31 - 1 items.
pub fn items<T: Length>(lengths: &[T], capacity: u32, overflow: Overflow) -> Result<Items> {
    if lengths.len() > MAX_ITEMS {
        return Err(Error::invalid(
            "lengths",
            format!("at most 2**31 - 1 lengths, got {}", lengths.len()),
        ));
    }
    let cap = i64::from(capacity);
    // The common case, every length in range, converts in one parallel pass; only when it
    // finds one out of range do the serial scans below look for the first.
    let out_of_range = AtomicBool::new(false);
    let mut converted = huge_vec(lengths.len());
    parallel::install_sized(lengths.len(), NS_PER_ITEM, || {
        converted.par_extend(lengths.par_iter().map(|v| {
            let v = v.value();
            if !(1..=cap).contains(&v) {
                out_of_range.store(true, Ordering::Relaxed);
            }
            v as u32
        }));
    })?;
    if !out_of_range.into_inner() {
        return Ok(Items {
            lengths: converted,
            sources: None,
        });
    }
    if let Some((index, value)) = first_where(lengths, |v| v < 1) {
        return Err(Error::invalid(
            "lengths",
            format!("every length must be >= 1, got {value} at index {index}"),
        ));
    }
    // Every length is >= 1 here, so the one out of range is over the capacity.
    let (index, value) = first_where(lengths, |v| v > cap).unwrap_or_default();
    match overflow {
        Overflow::Error => Err(Error::invalid(
            "lengths",
            format!(
                "length {value} at index {index} exceeds capacity {capacity}; \
                 pass overflow='truncate' or overflow='split' to pack it"
            ),
        )),
        Overflow::Truncate => {
            let lengths = parallel::install_sized(lengths.len(), NS_PER_ITEM, || {
                lengths
                    .par_iter()
                    .map(|v| v.value().min(cap) as u32)
                    .collect()
            })?;
            Ok(Items {
                lengths,
                sources: None,
            })
        }
        Overflow::Split => split(lengths, capacity),
    }
}

/// The first `(index, value)` for which `bad(value)` holds, in index order.
fn first_where<T: Length>(lengths: &[T], bad: impl Fn(i64) -> bool) -> Option<(usize, i64)> {
    lengths
        .iter()
        .position(|v| bad(v.value()))
        .map(|i| (i, lengths[i].value()))
}

fn split<T: Length>(lengths: &[T], capacity: u32) -> Result<Items> {
    let cap = i64::from(capacity);
    // Lengths are >= 1 here (checked by the caller), so the u64 division cannot wrap.
    let count: u64 = lengths
        .iter()
        .map(|v| (v.value() as u64).div_ceil(u64::from(capacity)))
        .fold(0, u64::saturating_add);
    if count > MAX_ITEMS as u64 {
        return Err(Error::invalid(
            "lengths",
            format!("splitting at capacity {capacity} gives {count} items; at most 2**31 - 1"),
        ));
    }
    let count = count as usize;
    // A few lengths can ask for billions of pieces: refuse what cannot fit, allocate fallibly.
    let hint = format!("splitting at capacity {capacity} gives {count} pieces; raise capacity");
    check_outputs_fit("lengths", 1, &[count], SPLIT_BYTES_PER_PIECE, &hint)?;
    let refused = || allocation_refused("lengths", format!("{count} pieces"), "raise capacity");
    let mut chunk_lengths = try_huge_vec(count).ok_or_else(refused)?;
    let mut source = try_huge_vec(count).ok_or_else(refused)?;
    let mut offset = try_huge_vec(count).ok_or_else(refused)?;
    for (index, length) in lengths.iter().enumerate() {
        let length = length.value();
        let mut start = 0;
        while start < length {
            chunk_lengths.push((length - start).min(cap) as u32);
            source.push(index as i32);
            offset.push(start);
            start += cap;
        }
    }
    Ok(Items {
        lengths: chunk_lengths,
        sources: Some((source, offset)),
    })
}

/// Check that item lengths are in [1, capacity], as [`items`] makes them (for callers that
/// pass item lengths straight in).
///
/// # Errors
/// [`Error::InvalidArgument`] naming `lengths` and the first length out of range.
pub fn check_item_lengths(lengths: &[u32], capacity: u32) -> Result<()> {
    if let Some(index) = lengths.iter().position(|&v| v == 0 || v > capacity) {
        return Err(Error::invalid(
            "lengths",
            format!(
                "every item length must be in [1, {capacity}], got {} at index {index}",
                lengths[index]
            ),
        ));
    }
    Ok(())
}

/// Items assigned to bins. Item indices are positions in the packed length list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packing {
    /// The bin of each item.
    pub bin_of_item: Vec<i32>,
    /// Where each item starts inside its bin.
    pub offset_in_bin: Vec<i32>,
    /// CSR row pointers: bin `b` holds `items[bin_offsets[b]..bin_offsets[b + 1]]`.
    pub bin_offsets: Vec<i64>,
    /// Item indices grouped by bin, each bin in placement order.
    pub items: Vec<i32>,
}

impl Packing {
    /// The number of bins used.
    pub fn num_bins(&self) -> usize {
        self.bin_offsets.len() - 1
    }
}

/// Pack items of the given lengths (each in [1, capacity], as [`items`] returns them).
///
/// # Errors
/// [`Error::InvalidArgument`] naming `lengths` when a length is 0 or over the capacity (a
/// caller that skipped [`items`]), or when the pool cannot start.
pub fn pack(lengths: &[u32], capacity: u32, strategy: Strategy) -> Result<Packing> {
    pack_with_layout(lengths, capacity, strategy, None)
}

/// [`pack`] with the free-space index layout forced (`Some(true)`: dense), for tests.
fn pack_with_layout(
    lengths: &[u32],
    capacity: u32,
    strategy: Strategy,
    dense: Option<bool>,
) -> Result<Packing> {
    check_item_lengths(lengths, capacity)?;
    // Everything below works in processing order, so the hot loop reads its lengths and
    // writes its answers sequentially; one scatter at the end returns to item order.
    if !strategy.decreasing() {
        let placed = place(lengths, capacity, strategy, dense);
        return to_item_order(placed, None);
    }
    let (sorted, plan) = order::decreasing(lengths, capacity)?;
    // The fit loop is serial and needs only the sorted lengths: the item order is built on
    // the other core meanwhile.
    let (placed, order) = parallel::install_sized(lengths.len(), NS_PER_ITEM, || {
        rayon::join(
            || place(&sorted, capacity, strategy, dense),
            || plan.item_order(lengths),
        )
    })?;
    to_item_order(placed, Some(&order))
}

/// Place `lengths` in the order given, by the strategy's rule.
fn place(lengths: &[u32], capacity: u32, strategy: Strategy, dense: Option<bool>) -> Placed {
    match strategy.rule() {
        None => next_fit(lengths, capacity),
        Some(rule) => fit(lengths, capacity, rule, dense),
    }
}

/// Bins and offsets in processing order, and the number of bins.
struct Placed {
    bin: Vec<i32>,
    offset: Vec<i32>,
    num_bins: usize,
}

fn next_fit(lengths: &[u32], capacity: u32) -> Placed {
    let mut bin = huge_vec(lengths.len());
    let mut offset = huge_vec(lengths.len());
    let (mut bins, mut load) = (0usize, capacity);
    for &length in lengths {
        if capacity - load < length {
            bins += 1;
            load = 0;
        }
        bin.push(bins as i32 - 1);
        offset.push(load as i32);
        load += length;
    }
    Placed {
        bin,
        offset,
        num_bins: bins,
    }
}

fn fit(lengths: &[u32], capacity: u32, rule: Rule, dense: Option<bool>) -> Placed {
    let mut bin_of = huge_vec(lengths.len());
    let mut offset = huge_vec(lengths.len());
    let mut index = match dense {
        Some(dense) => FreeSpace::with_layout(rule, capacity, lengths.len(), dense),
        None => FreeSpace::new(rule, capacity, lengths.len()),
    };
    // A bin left with less space than the shortest item can never take another one, so it
    // stays out of the index: fewer updates, and the same choices as the quadratic scan.
    let shortest = lengths.iter().copied().min().unwrap_or(1);
    let mut bins = 0u32;
    for &length in lengths {
        let (bin, free) = index.take(length).unwrap_or_else(|| {
            bins += 1;
            (bins - 1, capacity)
        });
        bin_of.push(bin as i32);
        offset.push((capacity - free) as i32);
        if free - length >= shortest {
            index.put(bin, free - length);
        }
    }
    Placed {
        bin: bin_of,
        offset,
        num_bins: bins as usize,
    }
}

/// Item-order arrays and the CSR view (each bin in placement order) from processing order.
fn to_item_order(placed: Placed, order: Option<&[u32]>) -> Result<Packing> {
    let Placed {
        bin,
        offset,
        num_bins,
    } = placed;
    // The CSR build is serial (a running cursor per bin); the scatters run beside it.
    let ((bin_offsets, items), (bin_of_item, offset_in_bin)) =
        parallel::install_sized(bin.len(), NS_PER_ITEM, || {
            rayon::join(
                || group_by_bin(&bin, num_bins, order),
                || match order {
                    None => (bin.clone(), offset),
                    Some(order) => rayon::join(
                        || order::scatter(&bin, order),
                        || order::scatter(&offset, order),
                    ),
                },
            )
        })?;
    Ok(Packing {
        bin_of_item,
        offset_in_bin,
        bin_offsets,
        items,
    })
}

/// CSR row pointers and item indices grouped by bin, each bin in processing order.
fn group_by_bin(bin: &[i32], num_bins: usize, order: Option<&[u32]>) -> (Vec<i64>, Vec<i32>) {
    let mut bin_offsets = huge_filled(num_bins + 1, 0i64);
    for &b in bin {
        bin_offsets[b as usize + 1] += 1;
    }
    for b in 0..num_bins {
        bin_offsets[b + 1] += bin_offsets[b];
    }
    let mut cursor: Vec<i64> = bin_offsets[..num_bins].to_vec();
    let mut items = huge_filled(bin.len(), 0i32);
    for (k, &b) in bin.iter().enumerate() {
        let slot = &mut cursor[b as usize];
        items[*slot as usize] = order.map_or(k as i32, |order| order[k] as i32);
        *slot += 1;
    }
    (bin_offsets, items)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{prop_assert_eq, proptest};

    use super::*;

    const ALL: [Strategy; 6] = [
        Strategy::NextFit,
        Strategy::FirstFit,
        Strategy::BestFit,
        Strategy::FirstFitDecreasing,
        Strategy::BestFitDecreasing,
        Strategy::WorstFitDecreasing,
    ];

    /// The quadratic scan every strategy must agree with: bin of each item.
    fn reference(lengths: &[u32], capacity: u32, strategy: Strategy) -> Vec<i32> {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        if strategy.decreasing() {
            order.sort_by_key(|&i| (std::cmp::Reverse(lengths[i]), i));
        }
        let mut free: Vec<u32> = Vec::new();
        let mut bin_of = vec![0i32; lengths.len()];
        for i in order {
            let x = lengths[i];
            let fits = |b: &usize| free[*b] >= x;
            let chosen = match strategy.rule() {
                None => free.len().checked_sub(1).filter(fits),
                Some(Rule::First) => (0..free.len()).find(fits),
                Some(Rule::Best) => (0..free.len()).filter(fits).min_by_key(|&b| (free[b], b)),
                Some(Rule::Worst) => (0..free.len())
                    .filter(fits)
                    .min_by_key(|&b| (std::cmp::Reverse(free[b]), b)),
            };
            let bin = chosen.unwrap_or_else(|| {
                free.push(capacity);
                free.len() - 1
            });
            free[bin] -= x;
            bin_of[i] = bin as i32;
        }
        bin_of
    }

    proptest! {
        #[test]
        fn every_layout_matches_the_quadratic_scan(
            capacity in 1u32..40,
            raw in proptest::collection::vec(1u32..1000, 0..80),
        ) {
            let lengths: Vec<u32> = raw.iter().map(|v| 1 + v % capacity).collect();
            for strategy in ALL {
                let expected = reference(&lengths, capacity, strategy);
                for dense in [Some(true), Some(false), None] {
                    let packing = pack_with_layout(&lengths, capacity, strategy, dense).unwrap();
                    prop_assert_eq!(&packing.bin_of_item, &expected, "{:?} {:?}", strategy, dense);
                }
            }
        }
    }

    fn bins(lengths: &[u32], capacity: u32, strategy: Strategy) -> Vec<Vec<i32>> {
        let packing = pack(lengths, capacity, strategy).unwrap();
        packing
            .bin_offsets
            .windows(2)
            .map(|w| packing.items[w[0] as usize..w[1] as usize].to_vec())
            .collect()
    }

    #[test]
    fn hand_cases() {
        assert_eq!(
            bins(&[3, 2, 3], 10, Strategy::BestFitDecreasing),
            [[0, 2, 1]]
        );
        let packing = pack(&[3, 2, 3], 10, Strategy::BestFitDecreasing).unwrap();
        assert_eq!(packing.offset_in_bin, [0, 6, 3]);
        // ffd puts the 1 into the first bin; bfd where it fits tightest, the second.
        assert_eq!(
            bins(&[8, 6, 3, 1], 10, Strategy::FirstFitDecreasing),
            [vec![0, 3], vec![1, 2]]
        );
        assert_eq!(
            bins(&[8, 6, 3, 1], 10, Strategy::BestFitDecreasing),
            [vec![0], vec![1, 2, 3]]
        );
        assert_eq!(
            bins(&[8, 6, 3, 1], 10, Strategy::WorstFitDecreasing),
            [vec![0, 3], vec![1, 2]]
        );
        assert_eq!(
            bins(&[4, 7, 2, 5], 10, Strategy::NextFit),
            [vec![0], vec![1, 2], vec![3]]
        );
        assert_eq!(
            bins(&[], 10, Strategy::BestFitDecreasing),
            Vec::<Vec<i32>>::new()
        );
    }

    #[test]
    fn overflow_policies() {
        let err = items(&[3i64, 12, 20], 10, Overflow::Error).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lengths: length 12 at index 1 exceeds capacity 10; \
             pass overflow='truncate' or overflow='split' to pack it"
        );
        let truncated = items(&[3i64, 12], 10, Overflow::Truncate).unwrap();
        assert_eq!(truncated.lengths, [3, 10]);
        let split = items(&[3i32, 25], 10, Overflow::Split).unwrap();
        assert_eq!(split.lengths, [3, 10, 10, 5]);
        assert_eq!(split.sources, Some((vec![0, 1, 1, 1], vec![0, 0, 10, 20])));
        let err = items(&[3i64, 0], 10, Overflow::Split).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lengths: every length must be >= 1, got 0 at index 1"
        );
        // The piece count of the longest lengths neither overflows nor allocates.
        let err = items(&[i64::MAX, i64::MAX], 1, Overflow::Split).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("lengths: splitting at capacity 1 gives 18446744073709551614 items"),
            "{err}"
        );
    }

    #[test]
    fn bad_names_list_the_allowed_values() {
        assert_eq!(
            Strategy::parse("bestfit").unwrap_err().to_string(),
            "strategy: must be one of 'next_fit', 'first_fit', 'best_fit', 'ffd', 'bfd', \
             'wfd', got \"bestfit\""
        );
        assert_eq!(
            Overflow::parse("drop").unwrap_err().to_string(),
            "overflow: must be one of 'error', 'truncate', 'split', got \"drop\""
        );
        assert!(check_capacity(0).is_err());
        assert!(check_capacity(1 << 31).is_err());
    }
}
