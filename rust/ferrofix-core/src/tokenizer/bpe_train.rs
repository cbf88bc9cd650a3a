//! Byte-level BPE training with incremental pair counts.
//!
//! Invariants:
//! - Deterministic: words are counted in parallel but ordered by their bytes before training,
//!   and the most frequent pair wins with ties broken by the smaller (left, right) symbol
//!   ids; so the merges depend only on the corpus, never on the thread count.
//! - A merge whose bytes equal an existing token reuses that token (as HF does), so token
//!   strings stay unique in an exported vocabulary.
//! - Work per merge is proportional to the words that contain the pair, not to the corpus.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::pretokenize::{Segment, SpecialMatcher, byte_level_pieces};
use crate::error::Result;
use crate::parallel;

/// A learned merge: the bytes of its left and right tokens.
pub type MergeBytes = (Vec<u8>, Vec<u8>);

#[inline]
fn pair_key(left: u32, right: u32) -> u64 {
    ((left as u64) << 32) | right as u64
}

/// Count the byte-level pieces of `texts` (special tokens are skipped, not learned).
fn count_words<'a>(texts: &[&'a str], specials: &SpecialMatcher) -> Vec<(&'a str, u64)> {
    let counts = texts
        .par_iter()
        .fold(FxHashMap::<&'a str, u64>::default, |mut counts, text| {
            specials.split(text, |segment| {
                if let Segment::Text(text) = segment {
                    byte_level_pieces(text, |piece| *counts.entry(piece).or_insert(0) += 1);
                }
            });
            counts
        })
        .reduce(FxHashMap::default, |mut a, b| {
            let (mut big, small) = if a.len() >= b.len() { (a, b) } else { (b, a) };
            for (word, n) in small {
                *big.entry(word).or_insert(0) += n;
            }
            a = big;
            a
        });
    let mut words: Vec<(&str, u64)> = counts.into_iter().collect();
    words.par_sort_unstable_by(|a, b| a.0.cmp(b.0));
    words
}

/// The training state: words as symbol sequences, pair counts and where each pair occurs.
struct Trainer {
    words: Vec<Vec<u32>>,
    freqs: Vec<i64>,
    pair_counts: FxHashMap<u64, i64>,
    /// Word indices that may contain the pair (duplicates and stale entries allowed).
    pair_words: FxHashMap<u64, Vec<u32>>,
    /// Bytes of each symbol: 0..256 are the bytes, then the merges' results.
    symbol_bytes: Vec<Vec<u8>>,
    symbol_of_bytes: FxHashMap<Vec<u8>, u32>,
}

impl Trainer {
    fn new(words: Vec<(&str, u64)>) -> Self {
        let symbol_bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let symbol_of_bytes = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        let mut trainer = Self {
            words: Vec::with_capacity(words.len()),
            freqs: Vec::with_capacity(words.len()),
            pair_counts: FxHashMap::default(),
            pair_words: FxHashMap::default(),
            symbol_bytes,
            symbol_of_bytes,
        };
        for (index, (word, freq)) in words.into_iter().enumerate() {
            let symbols: Vec<u32> = word.bytes().map(u32::from).collect();
            let freq = freq as i64;
            for pair in symbols.windows(2) {
                let key = pair_key(pair[0], pair[1]);
                *trainer.pair_counts.entry(key).or_insert(0) += freq;
                trainer
                    .pair_words
                    .entry(key)
                    .or_default()
                    .push(index as u32);
            }
            trainer.words.push(symbols);
            trainer.freqs.push(freq);
        }
        trainer
    }

    /// The symbol for the concatenation of `left` and `right`, made if new.
    fn merged_symbol(&mut self, left: u32, right: u32) -> u32 {
        let mut bytes = self.symbol_bytes[left as usize].clone();
        bytes.extend_from_slice(&self.symbol_bytes[right as usize]);
        if let Some(&symbol) = self.symbol_of_bytes.get(&bytes) {
            return symbol;
        }
        let symbol = self.symbol_bytes.len() as u32;
        self.symbol_bytes.push(bytes.clone());
        self.symbol_of_bytes.insert(bytes, symbol);
        symbol
    }

    /// Replace every (left, right) by `merged` and update the counts; returns the pairs
    /// whose counts grew.
    fn apply(&mut self, left: u32, right: u32, merged: u32) -> Vec<u64> {
        let key = pair_key(left, right);
        let mut word_indices = self.pair_words.remove(&key).unwrap_or_default();
        word_indices.sort_unstable();
        word_indices.dedup();
        let mut grown = Vec::new();
        for index in word_indices {
            let freq = self.freqs[index as usize];
            let word = &mut self.words[index as usize];
            let mut i = 0;
            while i + 1 < word.len() {
                if word[i] != left || word[i + 1] != right {
                    i += 1;
                    continue;
                }
                let mut changes: [(u64, i64); 4] = [(u64::MAX, 0); 4];
                if i > 0 {
                    changes[0] = (pair_key(word[i - 1], left), -freq);
                    changes[1] = (pair_key(word[i - 1], merged), freq);
                }
                if i + 2 < word.len() {
                    changes[2] = (pair_key(right, word[i + 2]), -freq);
                    changes[3] = (pair_key(merged, word[i + 2]), freq);
                }
                word[i] = merged;
                word.remove(i + 1);
                for (pair, delta) in changes {
                    if pair == u64::MAX {
                        continue;
                    }
                    *self.pair_counts.entry(pair).or_insert(0) += delta;
                    if delta > 0 {
                        self.pair_words.entry(pair).or_default().push(index);
                        grown.push(pair);
                    }
                }
                i += 1;
            }
        }
        self.pair_counts.remove(&key);
        grown.sort_unstable();
        grown.dedup();
        grown
    }
}

/// Learn up to `num_merges` merges from `texts`; stops early when the most frequent pair
/// occurs fewer than `min_frequency` times.
pub fn train(
    texts: &[&str],
    specials: &SpecialMatcher,
    num_merges: usize,
    min_frequency: u64,
) -> Result<Vec<MergeBytes>> {
    let words = parallel::install(|| count_words(texts, specials))?;
    let mut trainer = Trainer::new(words);
    let mut heap: BinaryHeap<(i64, Reverse<u64>)> = trainer
        .pair_counts
        .iter()
        .map(|(&pair, &count)| (count, Reverse(pair)))
        .collect();
    // Every merge needs a pair that occurs, so a huge `num_merges` (vocab_size = 2**40 asks
    // for "as many as the corpus allows") must not size the reservation.
    let mut merges = Vec::with_capacity(num_merges.min(heap.len()));
    while merges.len() < num_merges {
        let Some((count, Reverse(pair))) = heap.pop() else {
            break;
        };
        let current = trainer.pair_counts.get(&pair).copied().unwrap_or(0);
        if current != count {
            // Stale entry: the pair's count changed since it was pushed.
            if current > 0 {
                heap.push((current, Reverse(pair)));
            }
            continue;
        }
        if count <= 0 || (count as u64) < min_frequency {
            break;
        }
        let (left, right) = ((pair >> 32) as u32, pair as u32);
        let merged = trainer.merged_symbol(left, right);
        merges.push((
            trainer.symbol_bytes[left as usize].clone(),
            trainer.symbol_bytes[right as usize].clone(),
        ));
        for grown in trainer.apply(left, right, merged) {
            if let Some(&count) = trainer.pair_counts.get(&grown)
                && count > 0
            {
                heap.push((count, Reverse(grown)));
            }
        }
    }
    Ok(merges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_frequent_pair_first_ties_by_smaller_ids() {
        let specials = SpecialMatcher::new(&[]);
        // "ab" x3 and "cd" x3 tie with "ab" first by ids; then "abab"'s pair (ab, ab).
        let merges = train(&["ab ab ab cd cd cd abab abab"], &specials, 3, 2);
        let merges = merges.unwrap_or_default();
        assert_eq!(merges[0], (b"a".to_vec(), b"b".to_vec()));
        assert_eq!(merges[1], (b" ".to_vec(), b"ab".to_vec()));
        assert_eq!(merges.len(), 3);
    }

    #[test]
    fn stops_below_min_frequency() {
        let specials = SpecialMatcher::new(&[]);
        let merges = train(&["xy"], &specials, 10, 2).unwrap_or_default();
        assert!(merges.is_empty());
        let merges = train(&["xy"], &specials, 10, 1).unwrap_or_default();
        assert_eq!(merges, [(b"x".to_vec(), b"y".to_vec())]);
    }
}
