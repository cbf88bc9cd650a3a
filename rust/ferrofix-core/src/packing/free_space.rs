//! The open bins with free space, indexed so a strategy's choice costs O(log) instead of a
//! scan over every bin.
//!
//! Invariant: a query answers exactly what the quadratic scan would: among the bins that fit,
//! the one the rule prefers, ties to the lowest bin index. A bin is out of the index between
//! `take` and the `put` of its new free space (full bins are never put back).
//!
//! Two layouts, chosen by the capacity:
//! - dense (capacity small next to the item count): bins grouped by free space, one min-heap
//!   of bin indices per free-space value, a bit tree over the non-empty values (best, worst)
//!   or a min tree of each value's lowest bin (first). O(log capacity + log heap) per item.
//! - sparse (huge capacities): an ordered set of (free, bin) for best and worst, and a max
//!   tree over bins for first. O(log items) per item, which is below O(log capacity) here.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use super::Rule;

/// Dense layout is used when the capacity is at most this, or at most
/// `DENSE_ITEMS_FACTOR` times the item count: its O(capacity) setup is then negligible.
const DENSE_MAX_SMALL_CAPACITY: usize = 4096;
const DENSE_ITEMS_FACTOR: usize = 4;
const NONE: u32 = u32::MAX;

pub enum FreeSpace {
    Dense(Dense),
    SparseOrdered(BTreeSet<(u32, u32)>, Rule),
    SparseFirst(MaxTree),
}

impl FreeSpace {
    pub fn new(rule: Rule, capacity: u32, items: usize) -> Self {
        let dense = capacity as usize <= DENSE_MAX_SMALL_CAPACITY.max(DENSE_ITEMS_FACTOR * items);
        Self::with_layout(rule, capacity, items, dense)
    }

    pub fn with_layout(rule: Rule, capacity: u32, items: usize, dense: bool) -> Self {
        match (dense, rule) {
            (true, _) => Self::Dense(Dense::new(rule, capacity)),
            (false, Rule::First) => Self::SparseFirst(MaxTree::new(items)),
            (false, _) => Self::SparseOrdered(BTreeSet::new(), rule),
        }
    }

    /// Remove and return the bin the rule picks for an item of `length`, with its free space.
    #[inline]
    pub fn take(&mut self, length: u32) -> Option<(u32, u32)> {
        match self {
            Self::Dense(dense) => dense.take(length),
            Self::SparseOrdered(set, Rule::Worst) => {
                let &(free, _) = set.last()?;
                // The most free space; among equals the lowest bin.
                let &(free, bin) = set.range((free, 0)..).next()?;
                (free >= length).then(|| {
                    set.remove(&(free, bin));
                    (bin, free)
                })
            }
            Self::SparseOrdered(set, _) => {
                let &(free, bin) = set.range((length, 0)..).next()?;
                set.remove(&(free, bin));
                Some((bin, free))
            }
            Self::SparseFirst(tree) => tree.take_leftmost_at_least(length),
        }
    }

    /// Record that `bin` now has `free` (> 0) space.
    #[inline]
    pub fn put(&mut self, bin: u32, free: u32) {
        match self {
            Self::Dense(dense) => dense.put(bin, free),
            Self::SparseOrdered(set, _) => {
                set.insert((free, bin));
            }
            Self::SparseFirst(tree) => tree.set(bin as usize, free),
        }
    }
}

pub struct Dense {
    rule: Rule,
    /// Bins by free space: `classes[f]` holds the lowest bin with exactly `f` free and how
    /// many more there are, which `other_bins[f]` holds. Most classes hold one or two bins,
    /// so the common case reads one 8-byte entry and never touches the heap.
    classes: Vec<Class>,
    other_bins: Vec<BinaryHeap<Reverse<u32>>>,
    /// Best and worst: the free-space values with a non-empty class.
    values: BitTree,
    /// First: each class's lowest bin under a suffix-minimum tree.
    lowest: MinTree,
    /// First: each bin's free space, to find its class.
    free_of: Vec<u32>,
}

#[derive(Clone, Copy)]
struct Class {
    /// The lowest bin of the class, NONE when the class is empty.
    lowest: u32,
    /// How many more bins the class holds (in `other_bins`).
    others: u32,
}

impl Dense {
    fn new(rule: Rule, capacity: u32) -> Self {
        let values = capacity as usize;
        let first = rule == Rule::First;
        Self {
            rule,
            classes: vec![
                Class {
                    lowest: NONE,
                    others: 0
                };
                values
            ],
            other_bins: (0..values).map(|_| BinaryHeap::new()).collect(),
            values: BitTree::new(if first { 0 } else { values }),
            lowest: MinTree::new(if first { values } else { 0 }),
            free_of: Vec::new(),
        }
    }

    #[inline]
    fn take(&mut self, length: u32) -> Option<(u32, u32)> {
        let free = match self.rule {
            Rule::Best => self.values.next_at_or_after(length as usize)?,
            Rule::Worst => self.values.last().filter(|&f| f >= length as usize)?,
            Rule::First => {
                let bin = self.lowest.min_from(length as usize);
                if bin == NONE {
                    return None;
                }
                self.free_of[bin as usize] as usize
            }
        };
        let class = &mut self.classes[free];
        let bin = class.lowest;
        if class.others == 0 {
            class.lowest = NONE;
        } else {
            class.others -= 1;
            class.lowest = self.other_bins[free].pop().map_or(NONE, |Reverse(b)| b);
        }
        match self.rule {
            Rule::First => self.lowest.set(free, class.lowest),
            _ if class.lowest == NONE => self.values.remove(free),
            _ => {}
        }
        Some((bin, free as u32))
    }

    #[inline]
    fn put(&mut self, bin: u32, free: u32) {
        let f = free as usize;
        let class = &mut self.classes[f];
        let became_lowest = bin < class.lowest; // always when the class was empty (NONE)
        if class.lowest == NONE {
            class.lowest = bin;
            if self.rule != Rule::First {
                self.values.insert(f);
            }
        } else {
            class.others += 1;
            let other = if became_lowest {
                std::mem::replace(&mut class.lowest, bin)
            } else {
                bin
            };
            self.other_bins[f].push(Reverse(other));
        }
        if self.rule == Rule::First {
            if became_lowest {
                self.lowest.set(f, bin);
            }
            if self.free_of.len() <= bin as usize {
                self.free_of.resize(bin as usize + 1, 0);
            }
            self.free_of[bin as usize] = free;
        }
    }
}

/// Levels a [`BitTree`] can have: 64^6 values cover every u32.
const MAX_LEVELS: usize = 6;

/// A set of small integers with successor and maximum queries in O(log64 n): level 0 holds one
/// bit per value, each higher level one bit per non-zero word below it. All levels share one
/// flat vector, so a query walks plain offsets instead of nested vectors.
pub struct BitTree {
    words: Vec<u64>,
    /// Where each level starts in `words`, and (one past the top) the total length.
    level_start: [usize; MAX_LEVELS + 1],
    levels: usize,
}

impl BitTree {
    pub fn new(values: usize) -> Self {
        let mut level_start = [0; MAX_LEVELS + 1];
        let mut words = values.div_ceil(64).max(1);
        let mut levels = 0;
        loop {
            level_start[levels + 1] = level_start[levels] + words;
            levels += 1;
            if words == 1 {
                break;
            }
            words = words.div_ceil(64);
        }
        Self {
            words: vec![0; level_start[levels]],
            level_start,
            levels,
        }
    }

    /// The words of `level`.
    #[inline(always)]
    fn level(&self, level: usize) -> &[u64] {
        &self.words[self.level_start[level]..self.level_start[level + 1]]
    }

    #[inline]
    pub fn insert(&mut self, value: usize) {
        let mut position = value;
        for level in 0..self.levels {
            let word = &mut self.words[self.level_start[level] + (position >> 6)];
            let was_empty = *word == 0;
            *word |= 1 << (position & 63);
            if !was_empty {
                return;
            }
            position >>= 6;
        }
    }

    #[inline]
    pub fn remove(&mut self, value: usize) {
        let mut position = value;
        for level in 0..self.levels {
            let word = &mut self.words[self.level_start[level] + (position >> 6)];
            *word &= !(1 << (position & 63));
            if *word != 0 {
                return;
            }
            position >>= 6;
        }
    }

    /// The smallest member >= `value`.
    #[inline]
    pub fn next_at_or_after(&self, value: usize) -> Option<usize> {
        // Climb until a word holds a member at or after the position, then descend along
        // each level's lowest member.
        let mut position = value;
        let mut level = 0;
        loop {
            if level == self.levels {
                return None;
            }
            let word = *self.level(level).get(position >> 6)? & (!0u64 << (position & 63));
            if word != 0 {
                position = (position & !63) | word.trailing_zeros() as usize;
                break;
            }
            // Nothing left in this word: continue from the next word, one level up.
            position = (position >> 6) + 1;
            level += 1;
        }
        while level > 0 {
            level -= 1;
            position = (position << 6) | self.level(level)[position].trailing_zeros() as usize;
        }
        Some(position)
    }

    /// The largest member.
    pub fn last(&self) -> Option<usize> {
        let top = self.levels - 1;
        let word = self.level(top)[0];
        if word == 0 {
            return None;
        }
        let mut position = 63 - word.leading_zeros() as usize;
        for level in (0..top).rev() {
            position =
                (position << 6) | (63 - self.level(level)[position].leading_zeros() as usize);
        }
        Some(position)
    }
}

/// Point update, suffix minimum.
pub struct MinTree {
    size: usize,
    nodes: Vec<u32>,
}

impl MinTree {
    fn new(leaves: usize) -> Self {
        let size = leaves.next_power_of_two();
        Self {
            size,
            nodes: vec![NONE; 2 * size],
        }
    }

    fn set(&mut self, leaf: usize, value: u32) {
        let mut node = leaf + self.size;
        self.nodes[node] = value;
        while node > 1 {
            node >>= 1;
            self.nodes[node] = self.nodes[2 * node].min(self.nodes[2 * node + 1]);
        }
    }

    /// The minimum over leaves `from..`.
    fn min_from(&self, from: usize) -> u32 {
        let (mut lo, mut hi) = (from + self.size, 2 * self.size);
        let mut best = NONE;
        while lo < hi {
            if lo & 1 == 1 {
                best = best.min(self.nodes[lo]);
                lo += 1;
            }
            if hi & 1 == 1 {
                hi -= 1;
                best = best.min(self.nodes[hi]);
            }
            lo >>= 1;
            hi >>= 1;
        }
        best
    }
}

/// Point update over bins, leftmost leaf holding at least a value.
pub struct MaxTree {
    size: usize,
    nodes: Vec<u32>,
}

impl MaxTree {
    fn new(leaves: usize) -> Self {
        let size = leaves.next_power_of_two();
        Self {
            size,
            nodes: vec![0; 2 * size],
        }
    }

    fn set(&mut self, leaf: usize, value: u32) {
        let mut node = leaf + self.size;
        self.nodes[node] = value;
        while node > 1 {
            node >>= 1;
            self.nodes[node] = self.nodes[2 * node].max(self.nodes[2 * node + 1]);
        }
    }

    fn take_leftmost_at_least(&mut self, value: u32) -> Option<(u32, u32)> {
        if self.nodes[1] < value {
            return None;
        }
        let mut node = 1;
        while node < self.size {
            node = if self.nodes[2 * node] >= value {
                2 * node
            } else {
                2 * node + 1
            };
        }
        let (leaf, free) = (node - self.size, self.nodes[node]);
        self.set(leaf, 0);
        Some((leaf as u32, free))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_tree_successor_and_maximum() {
        for size in [1, 63, 64, 65, 4097, 300_000] {
            let mut tree = BitTree::new(size);
            assert_eq!(tree.next_at_or_after(0), None);
            assert_eq!(tree.last(), None);
            let members: Vec<usize> = [0, 5, 64, 4095, 4096, 200_000]
                .into_iter()
                .filter(|&m| m < size)
                .collect();
            members.iter().for_each(|&m| tree.insert(m));
            for probe in [0, 1, 6, 63, 64, 65, 4096, 5000, 250_000] {
                let expected = members.iter().copied().find(|&m| m >= probe);
                assert_eq!(
                    tree.next_at_or_after(probe),
                    expected,
                    "size {size} probe {probe}"
                );
            }
            assert_eq!(tree.last(), members.last().copied());
            members.iter().for_each(|&m| tree.remove(m));
            assert_eq!(tree.last(), None);
        }
    }
}
