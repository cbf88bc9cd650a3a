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

#[cfg(target_arch = "x86_64")]
mod avx2;

const MUL0: u32 = 0xD251_1F53;
const MUL1: u32 = 0xCD9E_8D57;
const WEYL0: u32 = 0x9E37_79B9;
const WEYL1: u32 = 0xBB67_AE85;
/// Blocks per step of the vector generator (and per call of [`CounterRng::below_bits`]:
/// 32 words, two AVX2 vectors per word).
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
            return unsafe { avx2::below_bits(self, first, limit) };
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

    /// `out[i] = self.f64_at(first + i)`, eight elements at a time on AVX2 machines.
    pub fn f64s_into(&self, first: u64, out: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the running CPU supports AVX2, checked just above.
            return unsafe { avx2::uniform_f64(self, first, out) };
        }
        for (k, slot) in out.iter_mut().enumerate() {
            *slot = self.f64_at(first.wrapping_add(k as u64));
        }
    }

    /// `out[i] = self.f32_at(first + i)`, eight elements at a time on AVX2 machines.
    pub fn f32s_into(&self, first: u64, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the running CPU supports AVX2, checked just above.
            return unsafe { avx2::uniform_f32(self, first, out) };
        }
        for (k, slot) in out.iter_mut().enumerate() {
            *slot = self.f32_at(first.wrapping_add(k as u64));
        }
    }

    /// `out[i] = map(self.below_at(first + i, range))`, the first block of eight elements at
    /// a time on AVX2 machines.
    pub fn below_into<T>(&self, first: u64, range: u64, out: &mut [T], map: impl Fn(u64) -> T) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the running CPU supports AVX2, checked just above.
            return unsafe { avx2::below(self, first, range, out, map) };
        }
        for (k, slot) in out.iter_mut().enumerate() {
            *slot = map(self.below_at(first.wrapping_add(k as u64), range));
        }
    }
}

/// Fill `out` with uniform f64 in [0, 1); `out[i]` is element `offset + i` of the stream.
///
/// # Errors
/// [`Error::InvalidArgument`] when the thread pool cannot start.
pub fn fill_uniform_f64(out: &mut [f64], rng: CounterRng, offset: u64) -> Result<()> {
    parallel::fill_chunks(out, offset, CHUNK_LEN, |first, slots| {
        rng.f64s_into(first, slots)
    })
}

/// Fill `out` with uniform f32 in [0, 1); `out[i]` is element `offset + i` of the stream.
///
/// # Errors
/// [`Error::InvalidArgument`] when the thread pool cannot start.
pub fn fill_uniform_f32(out: &mut [f32], rng: CounterRng, offset: u64) -> Result<()> {
    parallel::fill_chunks(out, offset, CHUNK_LEN, |first, slots| {
        rng.f32s_into(first, slots)
    })
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
    parallel::fill_chunks(out, offset, CHUNK_LEN, |first, slots| {
        rng.below_into(first, range, slots, |v| {
            (i128::from(low) + i128::from(v)) as i64
        });
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
    fn batch_fills_equal_one_element_at_a_time() {
        let rng = CounterRng::new(0x0123_4567_89ab_cdef, 7);
        // Starts whose eight-block steps carry into the counter's high word or wrap.
        let firsts = [
            0u64,
            3,
            u64::from(u32::MAX) - 5,
            (9u64 << 32) | 1,
            u64::MAX - 10,
        ];
        // Ranges with no, rare and frequent (nearly 1/2) rejection, and the full 2^64.
        let ranges = [1u64, 3, 50_000, (1 << 63) + 1, u64::MAX, 0];
        for first in firsts {
            for len in [0usize, 1, 7, 8, 9, 17, 100] {
                let at = |k: usize| first.wrapping_add(k as u64);
                let mut f64s = vec![0.0; len];
                rng.f64s_into(first, &mut f64s);
                let mut f32s = vec![0.0; len];
                rng.f32s_into(first, &mut f32s);
                for k in 0..len {
                    assert_eq!(
                        f64s[k].to_bits(),
                        rng.f64_at(at(k)).to_bits(),
                        "{first} {k}"
                    );
                    assert_eq!(
                        f32s[k].to_bits(),
                        rng.f32_at(at(k)).to_bits(),
                        "{first} {k}"
                    );
                }
                for range in ranges {
                    let mut ints = vec![0u64; len];
                    rng.below_into(first, range, &mut ints, |v| v);
                    for (k, &v) in ints.iter().enumerate() {
                        assert_eq!(v, rng.below_at(at(k), range), "{first} {range} {k}");
                    }
                }
            }
        }
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
