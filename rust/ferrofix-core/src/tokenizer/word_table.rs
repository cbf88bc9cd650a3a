//! The word model's lookup: an open-addressing table keyed by each word's first 8 bytes and
//! length, and a one-pass scanner for ASCII text that splits and looks up each word.
//!
//! Invariants:
//! - `get` returns the id of exactly the word's bytes: a probe matches only on equal length,
//!   equal first 8 bytes and (for longer words) equal remaining bytes, never on the hash alone.
//! - The scanner handles only ASCII text free of special-token first bytes; it reports
//!   `Fallback` otherwise and the caller takes the general path, so both paths give the same
//!   ids.
//!
//! Layout: a slot is 16 bytes, four slots make a cache-line bucket (stored field by field),
//! and the table is at most 3/4 full, so a 5k-word vocabulary (128 KB) stays in L2. A lookup
//! reads one bucket and compares its four slots at once (SSE2 on x86_64) without branching,
//! so the next word's lookup does not wait on a mispredicted compare and the loads of
//! consecutive words overlap. The bytes past the first 8 of long words live in an arena
//! reached through a side array.

use super::byte_classes::ByteClasses;

/// Odd 64-bit constants with good avalanche for the multiplicative hash.
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
const LENGTH_MIX: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// Little-endian word of up to 8 bytes, zero-filled. Two overlapping loads instead of a
/// byte copy through the stack, whose store would stall the load that reads it back.
#[inline]
fn load_le(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    debug_assert!(n <= 8);
    let read = |at: usize, width: usize| -> u64 {
        let mut word = 0u64;
        for (k, &byte) in bytes[at..at + width].iter().enumerate() {
            word |= u64::from(byte) << (8 * k);
        }
        word
    };
    match n {
        4..=8 => read(0, 4) | (read(n - 4, 4) << (8 * (n - 4))),
        2..=3 => read(0, 2) | (read(n - 2, 2) << (8 * (n - 2))),
        1 => u64::from(bytes[0]),
        _ => 0,
    }
}

/// The 8 bytes of `text` from `start`, little-endian (the caller checks they exist).
#[inline]
fn load_8(text: &[u8], start: usize) -> u64 {
    u64::from_le_bytes(text[start..start + 8].try_into().unwrap_or([0; 8]))
}

/// The first 8 bytes of `text[start..start + len]`, zero-filled. One 8-byte load whenever
/// the text has 8 bytes around the word (a byte copy through the stack stalls the load that
/// follows it).
#[inline]
fn prefix_at(text: &[u8], start: usize, len: usize) -> u64 {
    let n = text.len();
    let bytes = if start + 8 <= n {
        load_8(text, start)
    } else if n >= 8 {
        // The word ends within the text's last 8 bytes: load those and shift it down.
        load_8(text, n - 8) >> (8 * (start + 8 - n))
    } else {
        return load_le(&text[start..start + len.min(8)]);
    };
    if len >= 8 {
        bytes
    } else {
        bytes & ((1u64 << (8 * len)) - 1)
    }
}

/// Hash of a word from its prefix, length and the bytes after the first 8.
#[inline]
fn hash_of(prefix: u64, len: usize, tail: &[u8]) -> u64 {
    let mut hash = (prefix ^ (len as u64).wrapping_mul(LENGTH_MIX)).wrapping_mul(MULTIPLIER);
    for chunk in tail.chunks(8) {
        hash = (hash.rotate_left(29) ^ load_le(chunk)).wrapping_mul(MULTIPLIER);
    }
    hash
}

/// The bytes of `word` after its first 8 (empty for short words).
#[inline]
fn tail_of(word: &[u8]) -> &[u8] {
    word.get(8..).unwrap_or(&[])
}

/// Slots per bucket: 4 x (8-byte prefix, 4-byte length, 4-byte id), one cache line.
const BUCKET_SLOTS: usize = 4;

/// Four slots, field by field, so one SSE2 compare covers a field of every slot.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    /// The first 8 bytes of each word, zero-filled: with the length, a short word's key.
    prefixes: [u64; BUCKET_SLOTS],
    /// 0 marks an empty slot (words are never empty).
    lens: [u32; BUCKET_SLOTS],
    ids: [u32; BUCKET_SLOTS],
}

impl Bucket {
    /// `(hits, open)`: bit k of `hits` is set when slot k holds `prefix` and `len`, bit k of
    /// `open` when slot k is empty. No branches, so the next word's lookup does not wait on
    /// a mispredicted compare.
    #[inline(always)]
    fn matches(&self, prefix: u64, len: u32) -> (u32, u32) {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: SSE2 is part of x86_64, and the bucket is 64-byte aligned.
            unsafe { self.matches_sse2(prefix, len) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.matches_portable(prefix, len)
    }

    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    #[inline(always)]
    fn matches_portable(&self, prefix: u64, len: u32) -> (u32, u32) {
        let mut hits = 0;
        let mut open = 0;
        for k in 0..BUCKET_SLOTS {
            hits |= u32::from((self.prefixes[k] == prefix) & (self.lens[k] == len)) << k;
            open |= u32::from(self.lens[k] == 0) << k;
        }
        (hits, open)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn matches_sse2(&self, prefix: u64, len: u32) -> (u32, u32) {
        use std::arch::x86_64::{
            __m128i, _mm_and_si128, _mm_castsi128_pd, _mm_castsi128_ps, _mm_cmpeq_epi32,
            _mm_load_si128, _mm_movemask_pd, _mm_movemask_ps, _mm_set1_epi32, _mm_set1_epi64x,
            _mm_setzero_si128, _mm_shuffle_epi32,
        };
        // SAFETY: the three loads read 16 bytes each inside the 64-byte-aligned bucket, at
        // offsets 0, 16 and 32; the rest is SSE2 on registers.
        unsafe {
            let fields = std::ptr::from_ref(self).cast::<__m128i>();
            let key = _mm_set1_epi64x(prefix as i64);
            // 32-bit halves equal, then both halves of each 64-bit lane.
            let low = _mm_cmpeq_epi32(_mm_load_si128(fields), key);
            let high = _mm_cmpeq_epi32(_mm_load_si128(fields.add(1)), key);
            let low = _mm_and_si128(low, _mm_shuffle_epi32::<0b10_11_00_01>(low));
            let high = _mm_and_si128(high, _mm_shuffle_epi32::<0b10_11_00_01>(high));
            let prefix_hits = _mm_movemask_pd(_mm_castsi128_pd(low))
                | (_mm_movemask_pd(_mm_castsi128_pd(high)) << 2);
            let lens = _mm_load_si128(fields.add(2));
            let len_hits = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(
                lens,
                _mm_set1_epi32(len as i32),
            )));
            let open =
                _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(lens, _mm_setzero_si128())));
            ((prefix_hits & len_hits) as u32, open as u32)
        }
    }
}

/// What the scanner did with a text.
pub enum Scan<'a> {
    /// Every word was appended.
    Done,
    /// This word is not in the table (nothing after it was appended).
    Unknown(&'a str),
    /// The text needs the general path (non-ASCII or a special token's first byte).
    Fallback,
}

/// Word -> id, for whitespace-split words.
#[derive(Debug, Clone)]
pub struct WordTable {
    buckets: Vec<Bucket>,
    /// Where each long word's bytes after the first 8 start in `arena`, by slot
    /// (`bucket * BUCKET_SLOTS + slot`).
    tail_starts: Vec<u32>,
    arena: Vec<u8>,
    /// `64 - log2(buckets.len())`: the bucket index is the hash's top bits.
    shift: u32,
    classes: ByteClasses,
}

impl WordTable {
    /// A table of `(word, id)`; `special_first_bytes[b]` marks bytes that may start a
    /// special token (the scanner falls back on them).
    pub fn new<'a>(
        words: impl ExactSizeIterator<Item = (&'a str, u32)>,
        special_first_bytes: &[bool; 256],
    ) -> Self {
        let slots = words.len() * 4 / 3 + 1;
        let buckets = slots.div_ceil(BUCKET_SLOTS).next_power_of_two().max(4);
        let mut table = Self {
            buckets: vec![Bucket::default(); buckets],
            tail_starts: vec![0; buckets * BUCKET_SLOTS],
            arena: Vec::new(),
            shift: 64 - buckets.trailing_zeros(),
            classes: ByteClasses::new(special_first_bytes),
        };
        for (word, id) in words {
            table.insert(word.as_bytes(), id);
        }
        table
    }

    #[inline]
    fn first_bucket(&self, hash: u64) -> usize {
        (hash >> self.shift) as usize
    }

    fn insert(&mut self, word: &[u8], id: u32) {
        let prefix = prefix_at(word, 0, word.len());
        let mask = self.buckets.len() - 1;
        let mut b = self.first_bucket(hash_of(prefix, word.len(), tail_of(word)));
        // At most 3/4 full, so some bucket has a free slot.
        loop {
            let bucket = &mut self.buckets[b];
            if let Some(k) = bucket.lens.iter().position(|&len| len == 0) {
                bucket.prefixes[k] = prefix;
                bucket.lens[k] = word.len() as u32;
                bucket.ids[k] = id;
                self.tail_starts[b * BUCKET_SLOTS + k] = self.arena.len() as u32;
                self.arena.extend_from_slice(tail_of(word));
                return;
            }
            b = (b + 1) & mask;
        }
    }

    /// The id of the word whose first 8 bytes are `prefix`, length `len` and remaining bytes
    /// `tail`. Buckets fill in probe order and never empty, so a bucket with a free slot ends
    /// the search.
    #[inline(always)]
    fn lookup(&self, prefix: u64, len: usize, tail: &[u8]) -> Option<u32> {
        // No word in the table is that long (lengths are stored as u32).
        let len32 = u32::try_from(len).ok()?;
        let mask = self.buckets.len() - 1;
        let mut b = self.first_bucket(hash_of(prefix, len, tail));
        loop {
            let bucket = &self.buckets[b];
            let (mut hits, open) = bucket.matches(prefix, len32);
            // A short word's key is its prefix and length, so a hit is the word; a long
            // word's hit still needs its remaining bytes compared.
            while hits != 0 {
                let k = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                if tail.is_empty() || self.tail_is(b * BUCKET_SLOTS + k, tail) {
                    return Some(bucket.ids[k]);
                }
            }
            if open != 0 {
                return None;
            }
            b = (b + 1) & mask;
        }
    }

    /// Whether the long word in slot `slot` continues with `tail` after its first 8 bytes.
    fn tail_is(&self, slot: usize, tail: &[u8]) -> bool {
        let start = self.tail_starts[slot] as usize;
        self.arena[start..start + tail.len()] == *tail
    }

    /// The id of `word`.
    pub fn get(&self, word: &str) -> Option<u32> {
        let word = word.as_bytes();
        self.lookup(prefix_at(word, 0, word.len()), word.len(), tail_of(word))
    }

    /// Split ASCII `text` on whitespace and append each word's id (or `unk`) to `out`.
    ///
    /// The text is read in 64-byte blocks, each turned into a bit mask of its spaces without
    /// a branch per byte; words run from a start bit to the next end bit. A byte loop would
    /// mispredict its exit at the end of nearly every word.
    pub fn scan<'a>(&self, text: &'a str, unk: Option<u32>, out: &mut Vec<u32>) -> Scan<'a> {
        let bytes = text.as_bytes();
        let n = bytes.len();
        // The start of a word that runs past the end of the previous block.
        let mut pending: Option<usize> = None;
        // Whether the byte before the current block is a word byte (the text start is not).
        let mut word_before = 0u64;
        let mut base = 0;
        while base < n {
            let block_len = (n - base).min(64);
            let (mut spaces, fallback) = if block_len == 64 || n < 64 {
                self.classes.classify(&bytes[base..base + block_len])
            } else {
                // The short last block of a long text: classify the text's last 64 bytes
                // (one full block) and drop the bits of the bytes before `base`.
                let (spaces, fallback) = self.classes.classify(&bytes[n - 64..]);
                (spaces >> (base + 64 - n), fallback)
            };
            if fallback {
                return Scan::Fallback;
            }
            if block_len < 64 {
                // Past the end of the text counts as space, so the last word ends there.
                spaces |= !0u64 << block_len;
            }
            // Word starts, and word ends (the first space after a word): they alternate,
            // so the k-th start of the block pairs with its k-th end once a word carried
            // in from the previous block has taken the first end.
            let words = !spaces;
            let after_word = (words << 1) | word_before;
            let mut starts = words & !after_word;
            let mut ends = spaces & after_word;
            word_before = words >> 63;
            if let Some(start) = pending {
                if ends == 0 {
                    base += 64;
                    continue;
                }
                let end = base + ends.trailing_zeros() as usize;
                ends &= ends - 1;
                pending = None;
                if !self.push_word(bytes, start, end, unk, out) {
                    return Scan::Unknown(&text[start..end]);
                }
            }
            while starts != 0 {
                let start = base + starts.trailing_zeros() as usize;
                starts &= starts - 1;
                if ends == 0 {
                    pending = Some(start);
                    break;
                }
                let end = base + ends.trailing_zeros() as usize;
                ends &= ends - 1;
                if !self.push_word(bytes, start, end, unk, out) {
                    return Scan::Unknown(&text[start..end]);
                }
            }
            base += 64;
        }
        if let Some(start) = pending
            && !self.push_word(bytes, start, n, unk, out)
        {
            return Scan::Unknown(&text[start..]);
        }
        Scan::Done
    }

    /// Append the id of `text[start..end]` (or `unk`); false when it has neither.
    #[inline(always)]
    fn push_word(
        &self,
        text: &[u8],
        start: usize,
        end: usize,
        unk: Option<u32>,
        out: &mut Vec<u32>,
    ) -> bool {
        let len = end - start;
        let tail = tail_of(&text[start..end]);
        match self.lookup(prefix_at(text, start, len), len, tail).or(unk) {
            Some(id) => {
                out.push(id);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::CounterRng;

    fn table_of(words: &[&str]) -> WordTable {
        WordTable::new(
            words.iter().enumerate().map(|(i, w)| (*w, i as u32 + 7)),
            &[false; 256],
        )
    }

    #[test]
    fn short_loads_match_a_byte_copy() {
        let bytes = [0x01u8, 0x80, 0xff, 0x00, 0x7f, 0x20, 0xfe, 0x11];
        for len in 0..=8 {
            let mut copy = [0u8; 8];
            copy[..len].copy_from_slice(&bytes[..len]);
            assert_eq!(load_le(&bytes[..len]), u64::from_le_bytes(copy), "{len}");
        }
    }

    #[test]
    fn finds_exactly_the_words_it_holds() {
        let words = ["a", "bb", "ccc", "w123"];
        let table = table_of(&words);
        for (i, w) in words.iter().enumerate() {
            assert_eq!(table.get(w), Some(i as u32 + 7));
        }
        assert_eq!(table.get("b"), None);
        assert_eq!(table.get("w1234"), None);
        let mut out = Vec::new();
        assert!(matches!(
            table.scan("  a\tbb\n ccc ", None, &mut out),
            Scan::Done
        ));
        assert_eq!(out, [7, 8, 9]);
        assert!(matches!(
            table.scan("a zz", None, &mut out),
            Scan::Unknown("zz")
        ));
        assert!(matches!(table.scan("a é", None, &mut out), Scan::Fallback));
    }

    #[test]
    fn long_words_and_shared_prefixes_stay_apart() {
        // Same first 8 bytes, different lengths or tails; a NUL byte next to a shorter word.
        let words = [
            "abcdefgh",
            "abcdefghi",
            "abcdefghj",
            "abcdefghijklmnopq",
            "abcdefghijklmnopr",
            "a\0",
            "a",
        ];
        let table = table_of(&words);
        for (i, w) in words.iter().enumerate() {
            assert_eq!(table.get(w), Some(i as u32 + 7), "{w:?}");
        }
        for missing in [
            "abcdefg",
            "abcdefghk",
            "abcdefghijklmnop",
            "abcdefghijklmnopqr",
        ] {
            assert_eq!(table.get(missing), None, "{missing:?}");
        }
        let mut out = Vec::new();
        let text = "abcdefghijklmnopr abcdefghi a a\0 abcdefgh";
        assert!(matches!(table.scan(text, None, &mut out), Scan::Done));
        assert_eq!(out, [11, 8, 13, 12, 7]);
        // The last word ends at the end of the text: the prefix load must not read past it.
        out.clear();
        assert!(matches!(
            table.scan("x abcdefghj", Some(1), &mut out),
            Scan::Done
        ));
        assert_eq!(out, [1, 9]);
    }

    #[test]
    fn words_crossing_blocks_match_a_plain_split() {
        let words: Vec<String> = (0..300)
            .map(|i| format!("w{}", i * 7919 % 100_003))
            .collect();
        let table = table_of(&words.iter().map(String::as_str).collect::<Vec<_>>());
        // Lengths around the 64-byte block size, spaces runs of 1-3, leading and trailing.
        let rng = CounterRng::new(5, 0);
        let mut draws = rng.u64s_from(1);
        for length in [0usize, 1, 63, 64, 65, 127, 128, 129, 500] {
            for lead in 0..3 {
                let mut text = " ".repeat(lead);
                while text.len() < length {
                    let state = draws.next().unwrap_or_default();
                    text.push_str(&words[(state >> 33) as usize % words.len()]);
                    text.push_str(&"\t \n"[..1 + (state >> 20) as usize % 3]);
                }
                // A cut mid-word leaves a word outside the table: the scanner gives it `unk`.
                let text = &text[..length.min(text.len())];
                let expected: Vec<u32> = text
                    .split_whitespace()
                    .map(|w| table.get(w).unwrap_or(1))
                    .collect();
                let mut out = Vec::new();
                assert!(matches!(table.scan(text, Some(1), &mut out), Scan::Done));
                assert_eq!(out, expected, "{text:?}");
            }
        }
    }

    #[test]
    fn bucket_matches_agree_with_the_portable_compare() {
        let rng = CounterRng::new(11, 0);
        let mut draws = rng.u64s_from(1);
        let mut next = || draws.next().unwrap_or_default();
        for _ in 0..5000 {
            // Few distinct values, so hits, partial matches (same prefix, other length and
            // the reverse, or equal low halves only) and empty slots all occur.
            let mut bucket = Bucket::default();
            let pick = |r: u64| [0u64, 1, 1 << 32, (1 << 32) | 1, u64::MAX][(r % 5) as usize];
            for k in 0..BUCKET_SLOTS {
                bucket.prefixes[k] = pick(next());
                bucket.lens[k] = (next() % 3) as u32;
                bucket.ids[k] = k as u32;
            }
            let (prefix, len) = (pick(next()), (next() % 3) as u32);
            assert_eq!(
                bucket.matches(prefix, len),
                bucket.matches_portable(prefix, len),
                "{bucket:?} {prefix} {len}"
            );
        }
    }
}
