//! Byte-level BPE: the byte <-> printable-character map, merge tables and merge-rank encoding.
//!
//! Invariants:
//! - Every byte has a token, so encoding never meets an unknown symbol.
//! - A piece is encoded by repeatedly merging its lowest-rank adjacent pair, leftmost first
//!   among equal ranks: the same result as Hugging Face `tokenizers` BPE with
//!   `ignore_merges: false`, so exported merges give identical ids there.
//! - Results of multi-byte pieces are cached per thread, keyed by the merge table's identity;
//!   the cache changes speed only, never ids.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;

/// The GPT-2 map from each byte to a printable character (token strings in `tokenizer.json`).
pub fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in map.iter_mut().enumerate() {
        let printable = matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff);
        let code = if printable {
            b as u32
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).unwrap_or('\u{fffd}');
    }
    map
}

/// The inverse of [`byte_chars`]: the byte of a byte-level character.
pub fn char_byte(c: char) -> Option<u8> {
    static INVERSE: OnceLock<FxHashMap<char, u8>> = OnceLock::new();
    INVERSE
        .get_or_init(|| {
            byte_chars()
                .iter()
                .enumerate()
                .map(|(b, &c)| (c, b as u8))
                .collect()
        })
        .get(&c)
        .copied()
}

/// A pair of token ids packed into one hash key.
#[inline]
fn pair_key(left: u32, right: u32) -> u64 {
    ((left as u64) << 32) | right as u64
}

static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// Piece bytes -> ids, for one merge table.
type PieceCache = FxHashMap<Box<[u8]>, Box<[u32]>>;

thread_local! {
    /// (table id, cache) of the last table this thread encoded with.
    static CACHE: RefCell<(u64, PieceCache)> = RefCell::new((0, FxHashMap::default()));
}

/// Entries a thread's cache holds before it starts over.
const CACHE_CAPACITY: usize = 1 << 16;

/// Merge ranks over token ids: `(left, right) -> (rank, merged id)`.
#[derive(Debug, Clone)]
pub struct MergeTable {
    /// Identity of this table for the per-thread caches (fresh per construction and clone).
    id: u64,
    byte_ids: Box<[u32; 256]>,
    merges: FxHashMap<u64, (u32, u32)>,
}

impl MergeTable {
    /// A table from each byte's id and the merges `(left, right, merged)` in rank order.
    pub fn new(byte_ids: [u32; 256], merges: &[(u32, u32, u32)]) -> Self {
        let mut table = FxHashMap::default();
        for (rank, &(left, right, merged)) in merges.iter().enumerate() {
            // A repeated pair keeps its first (lowest) rank, as in HF.
            table
                .entry(pair_key(left, right))
                .or_insert((rank as u32, merged));
        }
        Self {
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            byte_ids: Box::new(byte_ids),
            merges: table,
        }
    }

    /// The id of one byte.
    #[inline]
    pub fn byte_id(&self, byte: u8) -> u32 {
        self.byte_ids[byte as usize]
    }

    /// Append the ids of one pre-tokenized piece to `out`.
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        match piece {
            [] => {}
            [b] => out.push(self.byte_id(*b)),
            _ if self.merges.is_empty() => out.extend(piece.iter().map(|&b| self.byte_id(b))),
            _ => CACHE.with(|cache| {
                let mut cache = cache.borrow_mut();
                if cache.0 != self.id || cache.1.len() >= CACHE_CAPACITY {
                    cache.0 = self.id;
                    cache.1.clear();
                }
                if let Some(ids) = cache.1.get(piece) {
                    out.extend_from_slice(ids);
                    return;
                }
                let start = out.len();
                self.merge_into(piece, out);
                cache.1.insert(piece.into(), out[start..].into());
            }),
        }
    }

    /// Merge the lowest-rank pair (leftmost among equals) until no pair has a rank.
    fn merge_into(&self, piece: &[u8], out: &mut Vec<u32>) {
        let rank = |left: u32, right: u32| self.merges.get(&pair_key(left, right)).copied();
        let mut symbols: Vec<u32> = piece.iter().map(|&b| self.byte_id(b)).collect();
        // ranks[i]: the merge of symbols[i] and symbols[i + 1], if any.
        let mut ranks: Vec<Option<(u32, u32)>> = symbols
            .windows(2)
            .map(|pair| rank(pair[0], pair[1]))
            .collect();
        loop {
            let mut best: Option<(usize, u32, u32)> = None;
            for (i, merge) in ranks.iter().enumerate() {
                if let Some((r, merged)) = *merge
                    && best.is_none_or(|(_, best_rank, _)| r < best_rank)
                {
                    best = Some((i, r, merged));
                }
            }
            let Some((i, _, merged)) = best else { break };
            symbols[i] = merged;
            symbols.remove(i + 1);
            ranks.remove(i);
            if i + 1 < symbols.len() {
                ranks[i] = rank(merged, symbols[i + 1]);
            }
            if i > 0 {
                ranks[i - 1] = rank(symbols[i - 1], merged);
            }
        }
        out.extend_from_slice(&symbols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_chars_round_trip_and_match_gpt2() {
        let map = byte_chars();
        assert_eq!(map[b' ' as usize], 'Ġ');
        assert_eq!(map[b'\n' as usize], 'Ċ');
        assert_eq!(map[b'a' as usize], 'a');
        for (b, &c) in map.iter().enumerate() {
            assert_eq!(char_byte(c), Some(b as u8));
        }
        assert_eq!(char_byte('€'), None);
    }

    #[test]
    fn lowest_rank_merges_first_leftmost_among_equals() {
        let mut byte_ids = [0u32; 256];
        for (b, id) in byte_ids.iter_mut().enumerate() {
            *id = b as u32;
        }
        let (a, b, c) = (b'a' as u32, b'b' as u32, b'c' as u32);
        // rank 0: b c -> 300; rank 1: a a -> 301; rank 2: a 300 -> 302
        let table = MergeTable::new(byte_ids, &[(b, c, 300), (a, a, 301), (a, 300, 302)]);
        let mut out = Vec::new();
        table.encode_piece(b"abc", &mut out);
        assert_eq!(out, [302]);
        out.clear();
        table.encode_piece(b"aaa", &mut out);
        assert_eq!(out, [301, a]);
        out.clear();
        table.encode_piece(b"aaa", &mut out); // from the cache
        assert_eq!(out, [301, a]);
    }
}
