//! Byte classes of the word scanner: which bytes of a block of text are whitespace, and
//! whether any byte needs the general path (non-ASCII, or the first byte of a special token).
//!
//! Invariants:
//! - A special token's first byte needs the general path even when it is whitespace, so a
//!   special such as `" x"` is matched there instead of being skipped as a space.
//! - The SSE2 path (x86_64, full 64-byte blocks) gives exactly the bits of the table path;
//!   it is used only when the specials start with at most `SIMD_SPECIALS` distinct ASCII
//!   bytes, which each take one compare.

/// Classes, as bit flags.
const SPACE: u8 = 1;
const FALLBACK: u8 = 2;

/// Special first bytes the SSE2 path compares against.
#[cfg(target_arch = "x86_64")]
const SIMD_SPECIALS: usize = 4;

/// The byte classes of one tokenizer.
#[derive(Debug, Clone)]
pub struct ByteClasses {
    table: Box<[u8; 256]>,
    /// The distinct ASCII special first bytes, repeated to fill the array; `None` when
    /// there are more than `SIMD_SPECIALS` (the table path then does all blocks).
    #[cfg(target_arch = "x86_64")]
    simd_specials: Option<[u8; SIMD_SPECIALS]>,
}

impl ByteClasses {
    /// Classes for a tokenizer whose special tokens start with the bytes marked in
    /// `special_first_bytes`.
    pub fn new(special_first_bytes: &[bool; 256]) -> Self {
        let mut table = Box::new([0u8; 256]);
        for (b, class) in table.iter_mut().enumerate() {
            *class = if special_first_bytes[b] || b >= 0x80 {
                FALLBACK
            } else if matches!(b as u8, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
                SPACE
            } else {
                0
            };
        }
        Self {
            table,
            #[cfg(target_arch = "x86_64")]
            simd_specials: simd_specials(special_first_bytes),
        }
    }

    /// `(spaces, fallback)` for a block of at most 64 bytes: bit k of `spaces` is set when
    /// `block[k]` is whitespace; `fallback` when any byte needs the general path.
    #[inline]
    pub fn classify(&self, block: &[u8]) -> (u64, bool) {
        #[cfg(target_arch = "x86_64")]
        if let (Ok(full), Some(specials)) = (<&[u8; 64]>::try_from(block), self.simd_specials) {
            return sse2::classify(full, &specials);
        }
        self.classify_with_table(block)
    }

    /// The portable path: one table lookup per byte, no branches.
    #[inline]
    pub fn classify_with_table(&self, block: &[u8]) -> (u64, bool) {
        debug_assert!(block.len() <= 64);
        let mut spaces = 0u64;
        let mut fallback = 0u8;
        for (k, &byte) in block.iter().enumerate() {
            let class = self.table[byte as usize];
            spaces |= u64::from(class & SPACE) << k;
            fallback |= class & FALLBACK;
        }
        (spaces, fallback != 0)
    }
}

/// The distinct ASCII special first bytes, padded by repeating the first (or a non-ASCII
/// byte, which the sign test already catches, when there are none).
#[cfg(target_arch = "x86_64")]
fn simd_specials(special_first_bytes: &[bool; 256]) -> Option<[u8; SIMD_SPECIALS]> {
    let ascii: Vec<u8> = (0u8..0x80)
        .filter(|&b| special_first_bytes[b as usize])
        .collect();
    if ascii.len() > SIMD_SPECIALS {
        return None;
    }
    let fill = ascii.first().copied().unwrap_or(0x80);
    let mut specials = [fill; SIMD_SPECIALS];
    specials[..ascii.len()].copy_from_slice(&ascii);
    Some(specials)
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_sub_epi8,
    };

    use super::SIMD_SPECIALS;

    /// Classify 64 bytes, 16 at a time. SSE2 is part of x86_64, so no runtime check.
    #[inline]
    pub fn classify(block: &[u8; 64], specials: &[u8; SIMD_SPECIALS]) -> (u64, bool) {
        let mut spaces = 0u64;
        let mut fallback = 0i32;
        for (k, chunk) in block.chunks_exact(16).enumerate() {
            // SAFETY: `chunk` is 16 readable bytes (an unaligned load), and SSE2 is always
            // available on x86_64.
            let (space_bits, fallback_bits) =
                unsafe { classify_16(_mm_loadu_si128(chunk.as_ptr().cast::<__m128i>()), specials) };
            spaces |= u64::from(space_bits) << (16 * k);
            fallback |= fallback_bits;
        }
        (spaces, fallback != 0)
    }

    /// Space bits and fallback bits of 16 bytes.
    #[inline]
    unsafe fn classify_16(v: __m128i, specials: &[u8; SIMD_SPECIALS]) -> (u16, i32) {
        // SAFETY: SSE2 intrinsics on registers only; SSE2 is part of x86_64.
        unsafe {
            // '\t'..='\r' are 9..=13: (b - 9) wrapping is at most 4 exactly for them.
            let shifted = _mm_sub_epi8(v, _mm_set1_epi8(9));
            let tab_to_cr = _mm_cmpeq_epi8(_mm_min_epu8(shifted, _mm_set1_epi8(4)), shifted);
            let space = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8)), tab_to_cr);
            // Non-ASCII bytes have the sign bit set, which is what movemask reads.
            let mut fallback = v;
            for &special in specials {
                fallback = _mm_or_si128(fallback, _mm_cmpeq_epi8(v, _mm_set1_epi8(special as i8)));
            }
            // A special's first byte is not a space even when it is whitespace.
            let space_bits = _mm_movemask_epi8(space) & !_mm_movemask_epi8(fallback);
            (space_bits as u16, _mm_movemask_epi8(fallback))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::CounterRng;

    fn classes_of(specials: &[u8]) -> ByteClasses {
        let mut first = [false; 256];
        for &b in specials {
            first[b as usize] = true;
        }
        ByteClasses::new(&first)
    }

    #[test]
    fn table_classes_follow_the_rules() {
        let classes = classes_of(b"[ ");
        let (spaces, fallback) = classes.classify_with_table(b"a b\tc\rd\x0ce");
        assert_eq!(spaces, 0b0_1010_1010 & !0b10);
        assert!(fallback, "' ' starts a special here");
        let classes = classes_of(b"[");
        let (spaces, fallback) = classes.classify_with_table(b"a b\x1fc\x0b");
        assert_eq!(spaces, 0b10_0010);
        assert!(!fallback);
        assert!(classes.classify_with_table(b"ab[").1);
        assert!(classes.classify_with_table("é".as_bytes()).1);
    }

    #[test]
    fn every_path_gives_the_table_bits() {
        let rng = CounterRng::new(7, 0);
        let mut draws = rng.u64s_from(1);
        let mut next = || draws.next().unwrap_or_default();
        let special_sets: [&[u8]; 5] = [b"", b"[", b"[<\t", b"[<#@", b"[<#@!"];
        for specials in special_sets {
            let classes = classes_of(specials);
            for round in 0..2000 {
                // Mostly ASCII letters and spaces; every byte value shows up.
                let mut block = [0u8; 64];
                for byte in &mut block {
                    let r = next();
                    *byte = match r % 8 {
                        0 => b' ',
                        1 => (r >> 8) as u8,
                        2 => 9 + (r >> 8) as u8 % 6,
                        _ => b'a' + (r >> 8) as u8 % 26,
                    };
                }
                let len = if round % 3 == 0 {
                    64
                } else {
                    (next() % 65) as usize
                };
                let block = &block[..len];
                assert_eq!(
                    classes.classify(block),
                    classes.classify_with_table(block),
                    "{specials:?} {block:?}"
                );
            }
        }
    }
}
