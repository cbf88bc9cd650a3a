//! The word model's lookup: an open-addressing table over one byte arena, and a one-pass
//! scanner for ASCII text that splits, hashes and looks up each word as it reads it.
//!
//! Invariants:
//! - `get` returns the id of exactly the word's bytes: a probe matches only on equal length
//!   and equal bytes, never on the hash alone.
//! - The scanner handles only ASCII text free of special-token first bytes; it reports
//!   `Fallback` otherwise and the caller takes the general path, so both paths give the same
//!   ids.

/// Multiplier of the byte-at-a-time hash (an odd 64-bit constant with good avalanche).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED: u64 = 0x243f_6a88_85a3_08d3;

#[inline]
fn step(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(MULTIPLIER)
}

fn hash_of(word: &[u8]) -> u64 {
    word.iter().fold(SEED, |h, &b| step(h, b))
}

/// The first 8 bytes of a word, little-endian, zero-filled.
fn prefix_of(word: &[u8]) -> u64 {
    word.iter()
        .take(8)
        .enumerate()
        .fold(0, |p, (k, &b)| p | (b as u64) << (8 * k))
}

#[inline]
fn finish(hash: u64) -> u64 {
    hash ^ (hash >> 29)
}

/// `a == b` for slices of equal length, inline (a `memcmp` call costs more than the
/// comparison of a short word).
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut a_chunks = a.chunks_exact(8);
    let mut b_chunks = b.chunks_exact(8);
    for (x, y) in a_chunks.by_ref().zip(b_chunks.by_ref()) {
        if x.iter().zip(y).fold(0u8, |acc, (p, q)| acc | (p ^ q)) != 0 {
            return false;
        }
    }
    a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .all(|(p, q)| p == q)
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The first 8 bytes, so short words compare without touching the arena.
    prefix: u64,
    tag: u32,
    id: u32,
    start: u32,
    /// 0 marks an empty slot (words are never empty).
    len: u32,
}

/// Byte classes of the scanner.
const WORD: u8 = 0;
const SPACE: u8 = 1;
const FALLBACK: u8 = 2;

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
    slots: Vec<Slot>,
    mask: usize,
    arena: Vec<u8>,
    classes: Box<[u8; 256]>,
}

impl WordTable {
    /// A table of `(word, id)`; `special_first_bytes[b]` marks bytes that may start a
    /// special token (the scanner falls back on them).
    pub fn new<'a>(
        words: impl ExactSizeIterator<Item = (&'a str, u32)>,
        special_first_bytes: &[bool; 256],
    ) -> Self {
        let capacity = (words.len() * 2).next_power_of_two().max(16);
        let mut table = Self {
            slots: vec![Slot::default(); capacity],
            mask: capacity - 1,
            arena: Vec::new(),
            classes: Box::new([WORD; 256]),
        };
        for (b, class) in table.classes.iter_mut().enumerate() {
            let b = b as u8;
            *class = if matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
                SPACE
            } else if !b.is_ascii() || special_first_bytes[b as usize] {
                FALLBACK
            } else {
                WORD
            };
        }
        for (word, id) in words {
            table.insert(word.as_bytes(), id);
        }
        table
    }

    fn insert(&mut self, word: &[u8], id: u32) {
        let hash = finish(hash_of(word));
        let mut i = hash as usize & self.mask;
        while self.slots[i].len != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = Slot {
            prefix: prefix_of(word),
            tag: (hash >> 32) as u32,
            id,
            start: self.arena.len() as u32,
            len: word.len() as u32,
        };
        self.arena.extend_from_slice(word);
    }

    #[inline]
    fn get_hashed(&self, word: &[u8], hash: u64, prefix: u64) -> Option<u32> {
        let hash = finish(hash);
        let tag = (hash >> 32) as u32;
        let mut i = hash as usize & self.mask;
        loop {
            let slot = self.slots[i];
            if slot.len == 0 {
                return None;
            }
            if slot.tag == tag && slot.len as usize == word.len() && slot.prefix == prefix {
                let start = slot.start as usize + 8;
                if word.len() <= 8
                    || same_bytes(&self.arena[start..start + word.len() - 8], &word[8..])
                {
                    return Some(slot.id);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The id of `word`.
    pub fn get(&self, word: &str) -> Option<u32> {
        let word = word.as_bytes();
        self.get_hashed(word, hash_of(word), prefix_of(word))
    }

    /// Split ASCII `text` on whitespace and append each word's id (or `unk`) to `out`.
    pub fn scan<'a>(&self, text: &'a str, unk: Option<u32>, out: &mut Vec<u32>) -> Scan<'a> {
        let bytes = text.as_bytes();
        let n = bytes.len();
        let mut i = 0;
        while i < n {
            let class = self.classes[bytes[i] as usize];
            if class == SPACE {
                i += 1;
                continue;
            }
            let start = i;
            let mut hash = SEED;
            let mut prefix = 0u64;
            while i < n {
                let b = bytes[i];
                match self.classes[b as usize] {
                    WORD => {
                        hash = step(hash, b);
                        if i - start < 8 {
                            prefix |= (b as u64) << (8 * (i - start));
                        }
                    }
                    SPACE => break,
                    _ => return Scan::Fallback,
                }
                i += 1;
            }
            let word = &bytes[start..i];
            match (self.get_hashed(word, hash, prefix), unk) {
                (Some(id), _) | (None, Some(id)) => out.push(id),
                (None, None) => return Scan::Unknown(&text[start..i]),
            }
        }
        Scan::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_words_it_holds() {
        let words = ["a", "bb", "ccc", "w123"];
        let table = WordTable::new(
            words.iter().enumerate().map(|(i, w)| (*w, i as u32 + 7)),
            &[false; 256],
        );
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
}
