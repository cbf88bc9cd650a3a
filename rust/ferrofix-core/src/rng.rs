//! The one deterministic random generator of ferrofix: counter-based Philox4x32-10.
//!
//! Every random value is a pure function of `(seed, stream, index, draw)`:
//! - `seed` (u64) is the 64-bit Philox key;
//! - `stream` (u32) separates independent uses of one seed (noise vs masking, ...);
//! - `index` (u64) is the element's position in the output;
//! - `draw` (u32) numbers further 128-bit blocks for the same element (rejection sampling,
//!   several variates per element).
//!
//! The counter is `[index_lo, index_hi, stream, draw]`. Nothing is carried from one element
//! to the next, so output is bit-identical for any thread count, chunking or machine, and
//! any slice of a stream can be produced on its own via an index offset.
//!
//! Philox4x32-10 is from Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3"
//! (SC 2011); it passes TestU01 BigCrush. The tests check the published known-answer vectors.

use crate::error::{Error, Result};
use crate::parallel;

const MUL0: u32 = 0xD251_1F53;
const MUL1: u32 = 0xCD9E_8D57;
const WEYL0: u32 = 0x9E37_79B9;
const WEYL1: u32 = 0xBB67_AE85;
/// Blocks per call of [`CounterRng::below_bits`]: 32 words, two AVX2 vectors per word.
pub const LANES: usize = 8;
/// Elements per parallel task: ~10-20 us of Philox work, far above rayon's per-task cost.
const CHUNK_LEN: usize = 4096;

/// One Philox4x32 round.
#[inline(always)]
fn round(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let p0 = u64::from(MUL0) * u64::from(ctr[0]);
    let p1 = u64::from(MUL1) * u64::from(ctr[2]);
    [
        ((p1 >> 32) as u32) ^ ctr[1] ^ key[0],
        p1 as u32,
        ((p0 >> 32) as u32) ^ ctr[3] ^ key[1],
        p0 as u32,
    ]
}

/// Philox4x32-10: the block function behind every random value.
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut ctr = ctr;
    let mut key = key;
    for r in 0..10 {
        if r > 0 {
            key = [key[0].wrapping_add(WEYL0), key[1].wrapping_add(WEYL1)];
        }
        ctr = round(ctr, key);
    }
    ctr
}

/// A seeded, stream-selected view of the generator. Cheap to copy and share across threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterRng {
    key: [u32; 2],
    stream: u32,
}

impl CounterRng {
    /// The generator for `seed` and `stream`.
    pub fn new(seed: u64, stream: u32) -> Self {
        Self {
            key: [seed as u32, (seed >> 32) as u32],
            stream,
        }
    }

    /// The `draw`-th 128-bit block of element `index`.
    #[inline]
    pub fn block(&self, index: u64, draw: u32) -> [u32; 4] {
        philox4x32_10(
            [index as u32, (index >> 32) as u32, self.stream, draw],
            self.key,
        )
    }

    /// Bernoulli decisions for the 32 words of blocks `first..first + 8` (draw 0): bit `t`
    /// is set when word `t % 4` of block `first + t / 4` is below `limit` (any limit above
    /// 2^32 sets every bit). Equal to comparing [`Self::block`]'s words one by one;
    /// on AVX2 machines the eight blocks run through Philox as vectors.
    #[inline]
    pub fn below_bits(&self, first: u64, limit: u64) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the running CPU supports AVX2, checked just above.
            return unsafe { self.below_bits_avx2(first, limit) };
        }
        self.below_bits_portable(first, limit)
    }

    fn below_bits_portable(&self, first: u64, limit: u64) -> u32 {
        let mut bits = 0u32;
        for lane in 0..LANES {
            let words = self.block(first.wrapping_add(lane as u64), 0);
            for (w, &word) in words.iter().enumerate() {
                bits |= u32::from(u64::from(word) < limit) << (4 * lane + w);
            }
        }
        bits
    }

    /// [`Self::below_bits`] on AVX2: each 64-bit lane carries one 32-bit Philox word in its
    /// low half (a 32x32->64 multiply reads only low halves, so rounds never repack), two
    /// vectors of four blocks per word.
    ///
    /// # Safety
    /// Only call on a CPU that supports AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn below_bits_avx2(&self, first: u64, limit: u64) -> u32 {
        use std::arch::x86_64::*;
        let lanes = |half: u64| {
            let i = |l: u64| first.wrapping_add(4 * half + l) as i64;
            _mm256_set_epi64x(i(3), i(2), i(1), i(0))
        };
        let index = [lanes(0), lanes(1)];
        let mut c0 = index;
        let mut c1 = index.map(|v| _mm256_srli_epi64::<32>(v));
        let mut c2 = [_mm256_set1_epi64x(i64::from(self.stream)); 2];
        let mut c3 = [_mm256_setzero_si256(); 2];
        let (mul0, mul1) = (
            _mm256_set1_epi64x(i64::from(MUL0)),
            _mm256_set1_epi64x(i64::from(MUL1)),
        );
        let mut key = self.key;
        for r in 0..10 {
            if r > 0 {
                key = [key[0].wrapping_add(WEYL0), key[1].wrapping_add(WEYL1)];
            }
            let (k0, k1) = (
                _mm256_set1_epi64x(i64::from(key[0])),
                _mm256_set1_epi64x(i64::from(key[1])),
            );
            for h in 0..2 {
                let p0 = _mm256_mul_epu32(c0[h], mul0);
                let p1 = _mm256_mul_epu32(c2[h], mul1);
                c0[h] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64::<32>(p1), c1[h]), k0);
                c1[h] = p1;
                c2[h] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64::<32>(p0), c3[h]), k1);
                c3[h] = p0;
            }
        }
        // Words as unsigned 32-bit values in 64-bit lanes, so a signed 64-bit compare with
        // the limit is exact once the limit is capped at 2^32 (which every word is below).
        let low = _mm256_set1_epi64x(0xffff_ffff);
        let limit = _mm256_set1_epi64x(limit.min(1 << 32) as i64);
        let mut bits = 0u32;
        for (w, words) in [c0, c1, c2, c3].iter().enumerate() {
            for (h, &v) in words.iter().enumerate() {
                let below = _mm256_cmpgt_epi64(limit, _mm256_and_si256(v, low));
                let lanes = _mm256_movemask_pd(_mm256_castsi256_pd(below)) as u32;
                // Lane l of half h is block 4h + l: its word w is bit 4(4h + l) + w.
                for l in 0..4 {
                    bits |= ((lanes >> l) & 1) << (4 * (4 * h + l) + w);
                }
            }
        }
        bits
    }

    /// 64 random bits for element `index`.
    #[inline]
    pub fn u64_at(&self, index: u64) -> u64 {
        let b = self.block(index, 0);
        u64::from(b[0]) | (u64::from(b[1]) << 32)
    }

    /// The 64-bit draws of elements `first`, `first + 1`, ... in turn (for sequential
    /// consumers such as test-data generators); indices wrap past `u64::MAX`.
    pub fn u64s_from(&self, first: u64) -> impl Iterator<Item = u64> + '_ {
        (0..=u64::MAX).map(move |k| self.u64_at(first.wrapping_add(k)))
    }

    /// A uniform f64 in [0, 1) with 53 random bits for element `index`.
    #[inline]
    pub fn f64_at(&self, index: u64) -> f64 {
        (self.u64_at(index) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform f32 in [0, 1) with 24 random bits for element `index`.
    #[inline]
    pub fn f32_at(&self, index: u64) -> f32 {
        (self.block(index, 0)[0] >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// An exactly uniform integer in `[0, range)` for element `index`; `range == 0` stands
    /// for the full 2**64 range (all 64 bits), so no input can divide by zero.
    ///
    /// Lemire's multiply-shift with rejection; rejected candidates are replaced by the next
    /// 64 bits of the element's own blocks, so no element ever borrows from another.
    #[inline]
    pub fn below_at(&self, index: u64, range: u64) -> u64 {
        if range == 0 {
            return self.u64_at(index);
        }
        // Products whose low half is below 2^64 mod range would over-represent some values.
        let threshold = range.wrapping_neg() % range;
        let mut draw = 0u32;
        loop {
            let b = self.block(index, draw);
            for x in [
                u64::from(b[0]) | (u64::from(b[1]) << 32),
                u64::from(b[2]) | (u64::from(b[3]) << 32),
            ] {
                let m = u128::from(x) * u128::from(range);
                if (m as u64) >= threshold {
                    return (m >> 64) as u64;
                }
            }
            // Each candidate is accepted with probability > 1/2: this loop ends after a
            // couple of blocks in practice and with probability 1 in theory.
            draw = draw.wrapping_add(1);
        }
    }
}

/// Fill `out` with uniform f64 in [0, 1); `out[i]` is element `offset + i` of the stream.
///
/// # Errors
/// [`Error::InvalidArgument`] when the thread pool cannot start.
pub fn fill_uniform_f64(out: &mut [f64], rng: CounterRng, offset: u64) -> Result<()> {
    parallel::fill_indexed(out, offset, CHUNK_LEN, |i| rng.f64_at(i))
}

/// Fill `out` with uniform f32 in [0, 1); `out[i]` is element `offset + i` of the stream.
///
/// # Errors
/// [`Error::InvalidArgument`] when the thread pool cannot start.
pub fn fill_uniform_f32(out: &mut [f32], rng: CounterRng, offset: u64) -> Result<()> {
    parallel::fill_indexed(out, offset, CHUNK_LEN, |i| rng.f32_at(i))
}

/// Fill `out` with integers uniform in `[low, high)`; `out[i]` is element `offset + i`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `high` when `high <= low`.
pub fn fill_integers(
    out: &mut [i64],
    low: i64,
    high: i64,
    rng: CounterRng,
    offset: u64,
) -> Result<()> {
    if high <= low {
        return Err(Error::invalid(
            "high",
            format!("must be greater than low ({low}), got {high}"),
        ));
    }
    // high - low fits in u64 for any i64 pair with low < high.
    let range = (i128::from(high) - i128::from(low)) as u64;
    parallel::fill_indexed(out, offset, CHUNK_LEN, |i| {
        (i128::from(low) + i128::from(rng.below_at(i, range))) as i64
    })
}

/// Validate a user's seed: any integer in `[0, 2**64)`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `seed` and the allowed range.
pub fn check_seed(seed: i128) -> Result<u64> {
    u64::try_from(seed)
        .map_err(|_| Error::invalid("seed", format!("must be in [0, 2**64), got {seed}")))
}

/// Validate a user's stream number: any integer in `[0, 2**32)`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `stream` and the allowed range.
pub fn check_stream(stream: i128) -> Result<u32> {
    u32::try_from(stream)
        .map_err(|_| Error::invalid("stream", format!("must be in [0, 2**32), got {stream}")))
}

/// Validate a stream offset (the index of the first element produced): `[0, 2**64)`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `offset` and the allowed range.
pub fn check_offset(offset: i128) -> Result<u64> {
    u64::try_from(offset)
        .map_err(|_| Error::invalid("offset", format!("must be in [0, 2**64), got {offset}")))
}

/// Validate an output shape and return its element count.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `shape` for a negative dimension or an element count
/// that does not fit in memory addressing.
pub fn element_count(shape: &[i64]) -> Result<usize> {
    let bad = || {
        Error::invalid(
            "shape",
            format!("must be non-negative integers whose product fits in memory, got {shape:?}"),
        )
    };
    shape.iter().try_fold(1usize, |count, &dim| {
        let dim = usize::try_from(dim).map_err(|_| bad())?;
        count.checked_mul(dim).ok_or_else(bad)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors published with Random123 (kat_vectors, philox4x32_10).
    #[test]
    fn philox_matches_published_known_answers() {
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn vector_bernoulli_bits_equal_one_block_at_a_time() {
        let rng = CounterRng::new(0x0123_4567_89ab_cdef, 0x6d61_736b);
        let limits = [
            0u64,
            1,
            1 << 31,
            3_000_000_000,
            u64::from(u32::MAX),
            1 << 32,
        ];
        // Includes first indices whose lanes carry from the low into the high word.
        for first in [
            0u64,
            5,
            (7u64 << 32) | 12,
            u64::from(u32::MAX) - 3,
            u64::MAX - 2,
        ] {
            for limit in limits {
                let expected = rng.below_bits_portable(first, limit);
                assert_eq!(rng.below_bits(first, limit), expected, "{first} {limit}");
            }
        }
        assert_eq!(rng.below_bits(9, 0), 0);
        assert_eq!(rng.below_bits(9, 1 << 32), u32::MAX);
        assert_eq!(rng.below_bits(9, u64::MAX), u32::MAX);
    }

    #[test]
    fn empty_and_reversed_integer_ranges_are_rejected() {
        let mut out = [0i64; 3];
        let err = fill_integers(&mut out, 5, 5, CounterRng::new(0, 0), 0).unwrap_err();
        assert_eq!(err.to_string(), "high: must be greater than low (5), got 5");
        assert!(fill_integers(&mut out, 5, -1, CounterRng::new(0, 0), 0).is_err());
    }

    #[test]
    fn seeds_streams_and_shapes_are_range_checked() {
        assert_eq!(check_seed((1i128 << 64) - 1), Ok(u64::MAX));
        assert_eq!(
            check_seed(-1).unwrap_err().to_string(),
            "seed: must be in [0, 2**64), got -1"
        );
        assert_eq!(
            check_stream(1i128 << 32).unwrap_err().to_string(),
            "stream: must be in [0, 2**32), got 4294967296"
        );
        assert_eq!(element_count(&[2, 3, 0]), Ok(0));
        assert_eq!(element_count(&[]), Ok(1));
        assert!(element_count(&[2, -1]).is_err());
        assert!(element_count(&[i64::MAX, i64::MAX]).is_err());
    }

    #[test]
    fn zero_range_means_all_64_bits_not_a_division_by_zero() {
        let rng = CounterRng::new(3, 0);
        assert_eq!(rng.below_at(9, 0), rng.u64_at(9));
    }

    #[test]
    fn sequential_draws_are_the_indexed_ones() {
        let rng = CounterRng::new(3, 1);
        let draws: Vec<u64> = rng.u64s_from(u64::MAX - 1).take(3).collect();
        assert_eq!(draws, [u64::MAX - 1, u64::MAX, 0].map(|i| rng.u64_at(i)));
    }

    #[test]
    fn full_i64_range_is_accepted() {
        let mut out = [0i64; 64];
        fill_integers(&mut out, i64::MIN, i64::MAX, CounterRng::new(1, 0), 0).unwrap();
        assert!(out.iter().any(|&v| v < 0) && out.iter().any(|&v| v > 0));
    }
}
