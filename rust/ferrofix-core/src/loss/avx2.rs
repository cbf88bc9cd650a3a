//! Hand-vectorised f32 hot loops of pass 1 (chunk max, `exp(x − max)` and its sum).
//!
//! Pass 1 bounds the whole loss, and it is compute-bound: the portable loops in `cpu.rs`
//! took ~0.75 ns per logit on one core of the benchmark machine, about twice what streaming
//! the logits costs. `exp`'s polynomial is a long chain of dependent FMAs; running four
//! chains side by side and prefetching the next chunk meanwhile brought that to ~0.5 ns.
//! The arithmetic is the portable `exp`'s, operation for operation (same constants, the
//! same fused multiply-adds, the same rounding), and lane `i` of the 16 accumulators sums
//! the elements `≡ i (mod 16)` as `cpu.rs`'s do, so results are bit-identical with or
//! without AVX2.

use std::arch::x86_64::{
    __m256, _MM_HINT_T0, _mm_prefetch, _mm256_add_epi32, _mm256_add_ps, _mm256_castps_si256,
    _mm256_castsi256_ps, _mm256_fmadd_ps, _mm256_fnmadd_ps, _mm256_loadu_ps, _mm256_max_ps,
    _mm256_mul_ps, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setzero_ps, _mm256_slli_epi32,
    _mm256_storeu_ps, _mm256_sub_ps,
};

use super::cpu::{Upcoming, exp_constants as k};

/// Elements per loop step: two AVX2 registers, matching `cpu.rs`'s 16 accumulator lanes.
const STEP: usize = 16;

const CACHE_LINE: usize = 64;

/// Whether the running CPU has what these kernels need.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `exp` of `N` registers of eight lanes, each ≤ 0 or NaN: the portable `Compute::exp` for
/// f32, vectorised.
/// Each step runs across all `N` registers before the next, so the out-of-order core
/// always has `N` independent dependency chains (the polynomial alone is ~30 cycles deep).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8xn<const N: usize>(x: [__m256; N]) -> [__m256; N] {
    let splat = |value: f32| _mm256_set1_ps(value);
    // Inputs are `x − max` ≤ 0 (or NaN), so only the low clamp of the portable version can
    // bite; it makes 2^n exactly 0 below the range. MAXPS returns its second operand when
    // either is NaN, so NaN propagates.
    let clamped = x.map(|x| _mm256_max_ps(splat(k::LO), x));
    let mut shifted = clamped;
    let mut r = clamped;
    for i in 0..N {
        shifted[i] = _mm256_fmadd_ps(clamped[i], splat(k::LOG2E), splat(k::ROUND));
    }
    for i in 0..N {
        let n = _mm256_sub_ps(shifted[i], splat(k::ROUND));
        r[i] = _mm256_fnmadd_ps(n, splat(k::LN2_HI), clamped[i]);
        r[i] = _mm256_fnmadd_ps(n, splat(k::LN2_LO), r[i]);
    }
    let mut p = r;
    for i in 0..N {
        // Estrin's scheme, as the portable version.
        let r2 = _mm256_mul_ps(r[i], r[i]);
        let high = _mm256_fmadd_ps(splat(k::P[1]), r[i], splat(k::P[2]));
        let low = _mm256_fmadd_ps(splat(k::P[3]), r[i], splat(k::P[4]));
        let top = _mm256_fmadd_ps(splat(k::P[0]), r2, high);
        p[i] = _mm256_fmadd_ps(top, r2, low);
    }
    let mut out = x;
    for i in 0..N {
        let y = _mm256_fmadd_ps(
            p[i],
            _mm256_mul_ps(r[i], r[i]),
            _mm256_add_ps(r[i], splat(1.0)),
        );
        // `shifted` holds n in its low mantissa bits; shifting them into the exponent field
        // and adding the bias gives 2^n (the high bits of 1.5·2^23 shift out).
        let bits = _mm256_slli_epi32::<23>(_mm256_castps_si256(shifted[i]));
        let scale = _mm256_castsi256_ps(_mm256_add_epi32(bits, _mm256_set1_epi32(127 << 23)));
        out[i] = _mm256_mul_ps(y, scale);
    }
    out
}

/// Max of a chunk ignoring NaN, as `cpu.rs`'s `chunk_max`.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`available`]).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn chunk_max(chunk: &[f32]) -> f32 {
    let mut low = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut high = low;
    let mut blocks = chunk.chunks_exact(STEP);
    for block in &mut blocks {
        // SAFETY: `block` holds STEP = 16 floats, so both 8-float loads are in bounds.
        unsafe {
            low = _mm256_max_ps(_mm256_loadu_ps(block.as_ptr()), low);
            high = _mm256_max_ps(_mm256_loadu_ps(block.as_ptr().add(8)), high);
        }
    }
    let lanes = spill(low, high);
    let mut best = f32::NEG_INFINITY;
    for &value in lanes.iter().chain(blocks.remainder()) {
        best = if value > best { value } else { best };
    }
    best
}

/// Write `exp(x − max)` of each `x` of `src` into `dst` (as long) and return their sum, as
/// `cpu.rs`'s `chunk_exp_sum` does for a finite `max`. Meanwhile asks for the cache lines of
/// `upcoming` (the logits of the next chunk), one per loop step, so the next chunk streams
/// in while this one computes instead of stalling its first pass.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`available`]).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_shifted_sum(src: &[f32], dst: &mut [f32], max: f32, upcoming: Upcoming) -> f64 {
    debug_assert_eq!(src.len(), dst.len());
    let len = src.len().min(dst.len());
    // SAFETY: both slices hold at least `len` floats, and a shared and a mutable slice
    // never overlap.
    unsafe { exp_shifted_sum_raw(src.as_ptr(), dst.as_mut_ptr(), len, max, upcoming) }
}

/// [`exp_shifted_sum`] over `values` in place (for chunks staged from 16-bit logits: one
/// buffer stays in L1 instead of two).
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`available`]).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_shifted_sum_in_place(values: &mut [f32], max: f32, upcoming: Upcoming) -> f64 {
    let at = values.as_mut_ptr();
    // SAFETY: `values` holds `values.len()` floats; reading and writing the same memory is
    // what `exp_shifted_sum_raw` allows.
    unsafe { exp_shifted_sum_raw(at, at, values.len(), max, upcoming) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `src` must be readable and `dst` writable for `len`
/// floats, and the two either the same memory or disjoint (each block is read in full
/// before it is written).
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted_sum_raw(
    src: *const f32,
    dst: *mut f32,
    len: usize,
    max: f32,
    upcoming: Upcoming,
) -> f64 {
    let shift = _mm256_set1_ps(max);
    let mut low_sum = _mm256_setzero_ps();
    let mut high_sum = low_sum;
    let mut line = upcoming.start;
    let mut at = 0;
    while at + 2 * STEP <= len {
        // Two cache lines of the next chunk per 128 bytes of this one.
        for _ in 0..2 {
            if line < upcoming.end {
                // A prefetch is only a hint: it never faults, whatever the address.
                _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
                line += CACHE_LINE;
            }
        }
        // SAFETY: floats `at..at + 32` are in bounds of both buffers (loop condition); all
        // four loads happen before the first store.
        unsafe {
            let (from, to) = (src.add(at), dst.add(at));
            let x = [0, 8, 16, 24].map(|i| _mm256_sub_ps(_mm256_loadu_ps(from.add(i)), shift));
            let e = exp8xn(x);
            for (i, &value) in e.iter().enumerate() {
                _mm256_storeu_ps(to.add(8 * i), value);
            }
            // Elements 0-7 and 16-23 go to the low lanes, as with 16-float steps.
            low_sum = _mm256_add_ps(_mm256_add_ps(low_sum, e[0]), e[2]);
            high_sum = _mm256_add_ps(_mm256_add_ps(high_sum, e[1]), e[3]);
        }
        at += 2 * STEP;
    }
    while at + STEP <= len {
        // SAFETY: floats `at..at + 16` are in bounds of both buffers; loads before stores.
        unsafe {
            let (from, to) = (src.add(at), dst.add(at));
            let x = [0, 8].map(|i| _mm256_sub_ps(_mm256_loadu_ps(from.add(i)), shift));
            let [low, high] = exp8xn(x);
            _mm256_storeu_ps(to, low);
            _mm256_storeu_ps(to.add(8), high);
            low_sum = _mm256_add_ps(low_sum, low);
            high_sum = _mm256_add_ps(high_sum, high);
        }
        at += STEP;
    }
    let partial: f64 = spill(low_sum, high_sum).iter().map(|&v| f64::from(v)).sum();
    let mut rest = 0.0;
    while at < len {
        // SAFETY: `at < len`, in bounds of both buffers.
        unsafe {
            let e = super::cpu::Compute::exp(*src.add(at) - max);
            *dst.add(at) = e;
            rest += f64::from(e);
        }
        at += 1;
    }
    partial + rest
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn spill(low: __m256, high: __m256) -> [f32; STEP] {
    let mut lanes = [0.0_f32; STEP];
    // SAFETY: `lanes` holds 16 floats, so both 8-float stores are in bounds.
    unsafe {
        _mm256_storeu_ps(lanes.as_mut_ptr(), low);
        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), high);
    }
    lanes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::cpu;

    /// Values across exp's range, with the edges (NaN, ±0, −inf, underflow) sprinkled in.
    fn chunk(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| match i % 37 {
                5 => f32::NAN,
                11 => f32::NEG_INFINITY,
                17 => -0.0,
                23 => -150.0,
                29 => -87.4,
                _ => ((i * 7919) % 2000) as f32 * 0.05 - 95.0,
            })
            .collect()
    }

    #[test]
    fn match_the_portable_loops_bit_for_bit() {
        if !available() {
            return;
        }
        for len in (0..=48).chain([100, 1000, 2047, 2048]) {
            let values = chunk(len);
            // SAFETY: AVX2 and FMA are available (checked above).
            let max = unsafe { chunk_max(&values) };
            assert_eq!(
                max.to_bits(),
                cpu::chunk_max(&values).to_bits(),
                "max, len {len}"
            );
            let shift = if max.is_finite() { max } else { 0.0 };
            let (mut ours, mut portable) = (vec![0.0; len], vec![0.0; len]);
            // SAFETY: as above.
            let sum =
                unsafe { exp_shifted_sum(&values, &mut ours, shift, Upcoming::after(&values)) };
            let expected = cpu::chunk_exp_sum(&values, &mut portable, shift);
            let mut in_place = values.clone();
            // SAFETY: as above.
            let in_place_sum =
                unsafe { exp_shifted_sum_in_place(&mut in_place, shift, Upcoming::after(&values)) };
            assert!(in_place_sum.to_bits() == sum.to_bits() || sum.is_nan());
            for (a, b) in in_place.iter().zip(&ours) {
                assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
            }
            assert!(sum.to_bits() == expected.to_bits() || (sum.is_nan() && expected.is_nan()));
            for (a, b) in ours.iter().zip(&portable) {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{a} vs {b}"
                );
            }
        }
    }
}
