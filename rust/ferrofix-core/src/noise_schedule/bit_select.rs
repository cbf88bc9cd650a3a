//! The write-out of the masking step: 32 decisions held as the bits of a u32 become the
//! new ids (`value` where a bit is set, the old id elsewhere) and one bool per token.
//! Whole steps of 32 tokens go through AVX2 blends where the CPU has them.

use std::mem::MaybeUninit;

/// Tokens per step: one bit each in a u32.
pub const STEP: usize = 32;

/// `out[t] = if bit t of bits { value } else { ids[t] }` for every `t < ids.len() <= 32`.
#[inline]
pub fn select_scalar<T: Copy>(out: &mut [MaybeUninit<T>], ids: &[T], bits: u32, value: T) {
    for (t, (out, &id)) in out.iter_mut().zip(ids).enumerate() {
        out.write(if (bits >> t) & 1 != 0 { value } else { id });
    }
}

/// [`select_scalar`] for int64 ids.
#[inline]
pub fn select_i64(out: &mut [MaybeUninit<i64>], ids: &[i64], bits: u32, value: i64) {
    #[cfg(target_arch = "x86_64")]
    if ids.len() == STEP && out.len() == STEP && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked) and both slices hold exactly 32 elements.
        unsafe { select_i64_avx2(out, ids, bits, value) };
        return;
    }
    select_scalar(out, ids, bits, value);
}

/// [`select_scalar`] for int32 ids.
#[inline]
pub fn select_i32(out: &mut [MaybeUninit<i32>], ids: &[i32], bits: u32, value: i32) {
    #[cfg(target_arch = "x86_64")]
    if ids.len() == STEP && out.len() == STEP && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked) and both slices hold exactly 32 elements.
        unsafe { select_i32_avx2(out, ids, bits, value) };
        return;
    }
    select_scalar(out, ids, bits, value);
}

/// `flags[t] = bit t of bits` for every `t < flags.len() <= 32`.
#[inline]
pub fn write_flags(flags: &mut [MaybeUninit<bool>], bits: u32) {
    #[cfg(target_arch = "x86_64")]
    if flags.len() == STEP && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked) and `flags` holds exactly 32 elements.
        unsafe { write_flags_avx2(flags, bits) };
        return;
    }
    for (t, flag) in flags.iter_mut().enumerate() {
        flag.write((bits >> t) & 1 != 0);
    }
}

/// # Safety
/// AVX2 must be present; `out` and `ids` must hold exactly 32 elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn select_i64_avx2(out: &mut [MaybeUninit<i64>], ids: &[i64], bits: u32, value: i64) {
    use std::arch::x86_64::*;
    let lane_bit = _mm256_set_epi64x(8, 4, 2, 1);
    let value = _mm256_set1_epi64x(value);
    for group in 0..STEP / 4 {
        let nibble = _mm256_set1_epi64x(i64::from((bits >> (4 * group)) & 15));
        let set = _mm256_cmpeq_epi64(_mm256_and_si256(nibble, lane_bit), lane_bit);
        // SAFETY: 4 * group + 4 <= 32 elements of each slice; unaligned loads and stores.
        unsafe {
            let id = _mm256_loadu_si256(ids.as_ptr().add(4 * group).cast());
            let new = _mm256_blendv_epi8(id, value, set);
            _mm256_storeu_si256(out.as_mut_ptr().add(4 * group).cast(), new);
        }
    }
}

/// # Safety
/// AVX2 must be present; `out` and `ids` must hold exactly 32 elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn select_i32_avx2(out: &mut [MaybeUninit<i32>], ids: &[i32], bits: u32, value: i32) {
    use std::arch::x86_64::*;
    let lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let value = _mm256_set1_epi32(value);
    for group in 0..STEP / 8 {
        let byte = _mm256_set1_epi32(((bits >> (8 * group)) & 255) as i32);
        let set = _mm256_cmpeq_epi32(_mm256_and_si256(byte, lane_bit), lane_bit);
        // SAFETY: 8 * group + 8 <= 32 elements of each slice; unaligned loads and stores.
        unsafe {
            let id = _mm256_loadu_si256(ids.as_ptr().add(8 * group).cast());
            let new = _mm256_blendv_epi8(id, value, set);
            _mm256_storeu_si256(out.as_mut_ptr().add(8 * group).cast(), new);
        }
    }
}

/// # Safety
/// AVX2 must be present; `flags` must hold exactly 32 elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn write_flags_avx2(flags: &mut [MaybeUninit<bool>], bits: u32) {
    use std::arch::x86_64::*;
    // Byte t takes byte t / 8 of `bits` (the shuffle works per 128-bit half; every 32-bit
    // lane holds all of `bits`), then keeps its own bit t % 8 as 0 or 1.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    let bools = _mm256_and_si256(set, _mm256_set1_epi8(1));
    // SAFETY: `flags` holds 32 bytes; bytes 0 and 1 are valid bools; unaligned store.
    unsafe { _mm256_storeu_si256(flags.as_mut_ptr().cast(), bools) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written<T: Copy>(out: &[MaybeUninit<T>]) -> Vec<T> {
        // SAFETY: the tests only read slices every element of which was written.
        out.iter().map(|x| unsafe { x.assume_init() }).collect()
    }

    #[test]
    fn vector_selects_and_flags_equal_the_scalar_loop() {
        for bits in [0u32, 1, 0x8000_0001, 0xdead_beef, 0x0f0f_f0f0, u32::MAX] {
            for n in [32usize, 31, 5, 0] {
                let ids64: Vec<i64> = (0..n as i64).map(|i| i * 1_000_000_007).collect();
                let ids32: Vec<i32> = (0..n as i32).map(|i| i * 7919 - 5).collect();
                let mut out64 = vec![MaybeUninit::uninit(); n];
                let mut expected64 = vec![MaybeUninit::uninit(); n];
                select_i64(&mut out64, &ids64, bits, -9);
                select_scalar(&mut expected64, &ids64, bits, -9);
                assert_eq!(written(&out64), written(&expected64), "{bits:#x} {n}");
                let mut out32 = vec![MaybeUninit::uninit(); n];
                let mut expected32 = vec![MaybeUninit::uninit(); n];
                select_i32(&mut out32, &ids32, bits, 3);
                select_scalar(&mut expected32, &ids32, bits, 3);
                assert_eq!(written(&out32), written(&expected32), "{bits:#x} {n}");
                let mut flags = vec![MaybeUninit::uninit(); n];
                write_flags(&mut flags, bits);
                let expected: Vec<bool> = (0..n).map(|t| (bits >> t) & 1 != 0).collect();
                assert_eq!(written(&flags), expected, "{bits:#x} {n}");
            }
        }
    }
}
