//! Philox4x32-10 on AVX2: eight consecutive blocks at a time, and the fills built on it.
//!
//! Each 64-bit lane carries one 32-bit Philox word in its low half (a 32x32->64 multiply
//! reads only low halves, so rounds never repack); a word of eight blocks is two vectors of
//! four lanes. One element's rounds are a chain of dependent multiplies, so the scalar
//! generator waits on their latency; eight blocks side by side keep the multipliers busy.
//! Every value equals the scalar one bit for bit (the tests compare them).

use std::arch::x86_64::{
    __m256i, _mm_storeu_ps, _mm256_add_pd, _mm256_and_si256, _mm256_castsi256_pd,
    _mm256_cmpgt_epi64, _mm256_cvtpd_ps, _mm256_movemask_pd, _mm256_mul_epu32, _mm256_mul_pd,
    _mm256_or_si256, _mm256_set_epi64x, _mm256_set1_epi64x, _mm256_set1_pd, _mm256_slli_epi64,
    _mm256_srli_epi64, _mm256_storeu_pd, _mm256_storeu_si256, _mm256_sub_pd, _mm256_xor_si256,
};

use super::{CounterRng, LANES, MUL0, MUL1, WEYL0, WEYL1};

/// Words 0-3 of blocks `first..first + 8`; `[w][h]` holds word `w` of blocks
/// `first + 4h .. first + 4h + 4`, one per 64-bit lane (low half; the high half is junk).
type Words = [[__m256i; 2]; 4];

const LOW_HALF: i64 = 0xffff_ffff;

/// The `draw`-th blocks of elements `first..first + 8` (indices wrap past `u64::MAX`).
///
/// # Safety
/// Only call on a CPU that supports AVX2.
#[target_feature(enable = "avx2")]
unsafe fn blocks(rng: &CounterRng, first: u64, draw: u32) -> Words {
    let lanes = |half: u64| {
        let i = |l: u64| first.wrapping_add(4 * half + l) as i64;
        _mm256_set_epi64x(i(3), i(2), i(1), i(0))
    };
    let index = [lanes(0), lanes(1)];
    let mut c0 = index;
    let mut c1 = index.map(|v| _mm256_srli_epi64::<32>(v));
    let mut c2 = [_mm256_set1_epi64x(i64::from(rng.stream)); 2];
    let mut c3 = [_mm256_set1_epi64x(i64::from(draw)); 2];
    let (mul0, mul1) = (
        _mm256_set1_epi64x(i64::from(MUL0)),
        _mm256_set1_epi64x(i64::from(MUL1)),
    );
    let mut key = rng.key;
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
    [c0, c1, c2, c3]
}

/// `CounterRng::below_bits` on AVX2.
///
/// # Safety
/// Only call on a CPU that supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn below_bits(rng: &CounterRng, first: u64, limit: u64) -> u32 {
    // SAFETY: the caller guarantees AVX2.
    let words = unsafe { blocks(rng, first, 0) };
    // Words as unsigned 32-bit values in 64-bit lanes, so a signed 64-bit compare with the
    // limit is exact once the limit is capped at 2^32 (which every word is below).
    let low = _mm256_set1_epi64x(LOW_HALF);
    let limit = _mm256_set1_epi64x(limit.min(1 << 32) as i64);
    let mut bits = 0u32;
    for (w, word) in words.iter().enumerate() {
        for (h, &v) in word.iter().enumerate() {
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

/// Integers below 2^53 in 64-bit lanes as f64, exactly: each 32-bit half is placed in the
/// mantissa of 2^52 (OR the bits, subtract 2^52), then `high·2^32 + low`.
#[inline]
#[target_feature(enable = "avx2")]
fn to_f64_exact(v: __m256i) -> std::arch::x86_64::__m256d {
    let two52_bits = _mm256_set1_epi64x(0x4330_0000_0000_0000);
    let two52 = _mm256_set1_pd(4_503_599_627_370_496.0);
    let half = |bits: __m256i| {
        _mm256_sub_pd(
            _mm256_castsi256_pd(_mm256_or_si256(bits, two52_bits)),
            two52,
        )
    };
    let low = half(_mm256_and_si256(v, _mm256_set1_epi64x(LOW_HALF)));
    let high = half(_mm256_srli_epi64::<32>(v));
    // Both terms and their sum are integers below 2^53: exact.
    _mm256_add_pd(_mm256_mul_pd(high, _mm256_set1_pd(4_294_967_296.0)), low)
}

/// The 64 bits `word0 | word1 << 32` of each block: what `CounterRng::u64_at` reads.
#[inline]
#[target_feature(enable = "avx2")]
fn first_u64(words: &Words, h: usize) -> __m256i {
    let low = _mm256_and_si256(words[0][h], _mm256_set1_epi64x(LOW_HALF));
    _mm256_or_si256(low, _mm256_slli_epi64::<32>(words[1][h]))
}

/// `out[i] = rng.f64_at(first + i)`.
///
/// # Safety
/// Only call on a CPU that supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn uniform_f64(rng: &CounterRng, first: u64, out: &mut [f64]) {
    let scale = _mm256_set1_pd(1.0 / (1u64 << 53) as f64);
    let mut steps = out.chunks_exact_mut(LANES);
    let mut index = first;
    for slots in &mut steps {
        // SAFETY: the caller guarantees AVX2.
        let words = unsafe { blocks(rng, index, 0) };
        for h in 0..2 {
            let top53 = _mm256_srli_epi64::<11>(first_u64(&words, h));
            let value = _mm256_mul_pd(to_f64_exact(top53), scale);
            // SAFETY: `slots` holds 8 f64, so 4h..4h + 4 is in bounds.
            unsafe { _mm256_storeu_pd(slots.as_mut_ptr().add(4 * h), value) };
        }
        index = index.wrapping_add(LANES as u64);
    }
    for (k, slot) in steps.into_remainder().iter_mut().enumerate() {
        *slot = rng.f64_at(index.wrapping_add(k as u64));
    }
}

/// `out[i] = rng.f32_at(first + i)`.
///
/// # Safety
/// Only call on a CPU that supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn uniform_f32(rng: &CounterRng, first: u64, out: &mut [f32]) {
    let scale = _mm256_set1_pd(1.0 / f64::from(1u32 << 24));
    let mut steps = out.chunks_exact_mut(LANES);
    let mut index = first;
    for slots in &mut steps {
        // SAFETY: the caller guarantees AVX2.
        let words = unsafe { blocks(rng, index, 0) };
        for (h, &word) in words[0].iter().enumerate() {
            let word = _mm256_and_si256(word, _mm256_set1_epi64x(LOW_HALF));
            // 24 bits times 2^-24 is exact in f64 and again after narrowing to f32.
            let value = _mm256_mul_pd(to_f64_exact(_mm256_srli_epi64::<8>(word)), scale);
            // SAFETY: `slots` holds 8 f32, so 4h..4h + 4 is in bounds.
            unsafe { _mm_storeu_ps(slots.as_mut_ptr().add(4 * h), _mm256_cvtpd_ps(value)) };
        }
        index = index.wrapping_add(LANES as u64);
    }
    for (k, slot) in steps.into_remainder().iter_mut().enumerate() {
        *slot = rng.f32_at(index.wrapping_add(k as u64));
    }
}

/// `out[i] = map(rng.below_at(first + i, range))`: the first block of eight elements at once, and
/// Lemire's multiply and test per element; an element whose two candidates are both
/// rejected (rare) is redrawn by the scalar path, which starts from the same block.
///
/// # Safety
/// Only call on a CPU that supports AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn below<T>(
    rng: &CounterRng,
    first: u64,
    range: u64,
    out: &mut [T],
    map: impl Fn(u64) -> T,
) {
    let threshold = if range == 0 {
        0
    } else {
        range.wrapping_neg() % range
    };
    let mut steps = out.chunks_exact_mut(LANES);
    let mut index = first;
    for slots in &mut steps {
        // SAFETY: the caller guarantees AVX2.
        let words = unsafe { blocks(rng, index, 0) };
        let mut candidates = [[0u64; LANES]; 2];
        for h in 0..2 {
            let second = _mm256_or_si256(
                _mm256_and_si256(words[2][h], _mm256_set1_epi64x(LOW_HALF)),
                _mm256_slli_epi64::<32>(words[3][h]),
            );
            for (c, v) in [first_u64(&words, h), second].into_iter().enumerate() {
                // SAFETY: 4 u64 fit in candidates[c][4h..4h + 4].
                unsafe {
                    _mm256_storeu_si256(candidates[c].as_mut_ptr().add(4 * h).cast(), v);
                }
            }
        }
        for (l, slot) in slots.iter_mut().enumerate() {
            *slot = map(match range {
                0 => candidates[0][l],
                _ => candidates
                    .iter()
                    .map(|c| u128::from(c[l]) * u128::from(range))
                    .find(|&m| (m as u64) >= threshold)
                    .map(|m| (m >> 64) as u64)
                    .unwrap_or_else(|| rng.below_at(index.wrapping_add(l as u64), range)),
            });
        }
        index = index.wrapping_add(LANES as u64);
    }
    for (k, slot) in steps.into_remainder().iter_mut().enumerate() {
        *slot = map(rng.below_at(index.wrapping_add(k as u64), range));
    }
}
