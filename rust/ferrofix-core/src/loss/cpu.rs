//! CPU backend of the causal-LM loss: rows in parallel, each row streamed in L1-sized chunks.
//!
//! Per contributing row: pass 1 takes each chunk's max and writes `exp(x − max)` of it into
//! a row-sized buffer, summing as it goes, with an online rescale between chunks, giving
//! `lse`; f32 and f64 logits are read where they are, 16-bit (and softcapped) ones are
//! staged as f32 first. Pass 2 (only when a gradient is wanted) turns the kept
//! exponentials into the scaled `softmax − onehot` in the logits' dtype, into a separate
//! buffer or over the logits themselves, without a second `exp`. Extra memory is one row of
//! exponentials and two chunk buffers per task plus O(N) per-row results. Rows that
//! contribute nothing are skipped (their gradient row is zeroed).
//!
//! Per-row losses are summed in f64 in row order after the parallel part, so the result is
//! bit-identical for every thread count. NaN logits make that row's loss NaN, +inf logits
//! NaN as well; −inf logits (masked vocabulary) are fine and get zero probability.

use half::{bf16, f16, slice::HalfFloatSliceExt};
use rayon::prelude::*;
use std::ops::{Add, Mul, Sub};

use super::{LossOptions, LossOutput, NO_TARGET, Problem, Reduction, gradient_scale};
use crate::error::{Error, Result};
use crate::memory::advise_huge_pages;
use crate::parallel;

/// Elements per chunk: 2048 f32 are 8 KiB, so a chunk and its gradient stay in L1.
const CHUNK: usize = 2048;
/// Independent accumulators per reduction: one AVX2 register of f32 (LLVM may not reorder
/// a single float sum by itself; more lanes spill registers in the `exp` loop).
const LANES: usize = 16;
/// Most logit elements per parallel task (~100 us of work); smaller inputs are split into
/// about `TASKS_PER_THREAD` tasks per thread so both cores get work and stay balanced.
const MAX_TASK_ELEMENTS: usize = 1 << 18;
const TASKS_PER_THREAD: usize = 4;
/// Below this many elements (~30 us of work) the whole call runs on the calling thread:
/// handing work to the pool and waking a second core costs 10-40 us on a virtual machine,
/// more than splitting saves.
const SERIAL_ELEMENTS: usize = 1 << 17;

/// The arithmetic type a row is computed in: f32 for 16- and 32-bit logits, f64 for f64.
pub trait Compute:
    Copy
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Send
    + Sync
    + 'static
{
    /// Negative infinity.
    const NEG_INFINITY: Self;
    /// `e^self`; exact to a few ulp, NaN in gives NaN out, very negative gives 0.
    fn exp(self) -> Self;
    /// Max of a chunk, ignoring NaN.
    fn chunk_max(chunk: &[Self]) -> Self {
        chunk_max(chunk)
    }
    /// Write `exp(x − max)` of each `x` of `src` into `dst` (as long) and return their sum;
    /// `upcoming` is the memory the caller reads next (a hint for prefetching).
    fn exp_shifted_sum(src: &[Self], dst: &mut [Self], max: Self, upcoming: Upcoming) -> f64 {
        let _ = upcoming;
        chunk_exp_sum(src, dst, max)
    }
    /// [`Compute::exp_shifted_sum`] over `values` in place.
    fn exp_shifted_sum_in_place(values: &mut [Self], max: Self, upcoming: Upcoming) -> f64 {
        let _ = upcoming;
        chunk_exp_sum_in_place(values, max)
    }
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// `self·a + b`, fused where the CPU has FMA.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Whether this is NaN.
    fn is_nan(self) -> bool;
    /// Round from f64.
    fn from_f64(value: f64) -> Self;
    /// Widen to f64.
    fn to_f64(self) -> f64;
}

/// The constants of f32 `exp`: `e^x = 2^n · e^r` with `n = round(x·log2 e)` and
/// `r = x − n·ln 2` (ln 2 split in two for exactness), `e^r ≈ 1 + r + r²·P(r)`.
pub(super) mod exp_constants {
    pub const LOG2E: f32 = std::f32::consts::LOG2_E;
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// Inputs are clamped to LO, where n = −127 and 2^n's bits are all zero: the result is
    /// exactly 0 there and below, without a separate compare. Above HI 2^n would overflow.
    pub const LO: f32 = -88.0;
    pub const HI: f32 = 88.3;
    /// Adding 1.5·2^23 rounds to an integer and leaves it in the low mantissa bits.
    pub const ROUND: f32 = 12_582_912.0;
    /// `P`, highest degree first: a relative-minimax fit of `(e^r − 1 − r) / r²` on
    /// `|r| ≤ ln 2 / 2` (Lawson's iteration, then rounded to f32). Its own error is 3.8e-9
    /// (0.06 ulp), so the result's error is the f32 evaluation's; one degree below Cephes'
    /// six coefficients, one fused multiply-add less per element.
    pub const P: [f32; 5] = [
        1.381_461_3e-3,
        8.368_71e-3,
        4.166_839e-2,
        1.666_652_1e-1,
        0.499_999_94,
    ];
}

impl Compute for f32 {
    const NEG_INFINITY: Self = f32::NEG_INFINITY;

    /// Branch-free `expf` (Cephes' reduction, a minimax polynomial; ≤ 2 ulp on the range used here) that LLVM
    /// vectorises; libm's `expf` is a call per element.
    #[inline(always)]
    fn exp(self) -> Self {
        use exp_constants::{HI, LN2_HI, LN2_LO, LO, LOG2E, P, ROUND};
        let x = self.clamp(LO, HI); // NaN stays NaN and propagates
        let shifted = x.mul_add(LOG2E, ROUND);
        let k = shifted - ROUND;
        let k_int = (shifted.to_bits() as i32).wrapping_sub(0x4B40_0000);
        let r = (-k).mul_add(LN2_LO, (-k).mul_add(LN2_HI, x));
        let r2 = r * r;
        // Estrin's scheme: three levels of FMAs instead of Horner's four.
        let high = P[1].mul_add(r, P[2]);
        let low = P[3].mul_add(r, P[4]);
        let p = P[0].mul_add(r2, high).mul_add(r2, low);
        let y = p.mul_add(r2, r + 1.0);
        let scale = f32::from_bits(((k_int + 127) as u32) << 23);
        y * scale
    }

    #[inline(always)]
    fn chunk_max(chunk: &[Self]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if super::avx2::available() {
            // SAFETY: the running CPU supports AVX2 and FMA (checked just above).
            return unsafe { super::avx2::chunk_max(chunk) };
        }
        chunk_max(chunk)
    }

    #[inline(always)]
    fn exp_shifted_sum(src: &[Self], dst: &mut [Self], max: Self, upcoming: Upcoming) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if super::avx2::available() && max != f32::NEG_INFINITY {
            // SAFETY: the running CPU supports AVX2 and FMA (checked just above).
            return unsafe { super::avx2::exp_shifted_sum(src, dst, max, upcoming) };
        }
        let _ = upcoming;
        chunk_exp_sum(src, dst, max)
    }

    #[inline(always)]
    fn exp_shifted_sum_in_place(values: &mut [Self], max: Self, upcoming: Upcoming) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if super::avx2::available() && max != f32::NEG_INFINITY {
            // SAFETY: the running CPU supports AVX2 and FMA (checked just above).
            return unsafe { super::avx2::exp_shifted_sum_in_place(values, max, upcoming) };
        }
        let _ = upcoming;
        chunk_exp_sum_in_place(values, max)
    }

    #[inline(always)]
    fn tanh(self) -> Self {
        f32::tanh(self)
    }

    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }

    #[inline(always)]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }

    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }

    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Compute for f64 {
    const NEG_INFINITY: Self = f64::NEG_INFINITY;

    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }

    #[inline(always)]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }

    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }

    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }

    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }

    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

/// A logits element type: how a chunk is staged into the compute type and written back.
pub trait Logit: Copy + Default + Send + Sync + 'static {
    /// The type rows are computed in.
    type C: Compute;
    /// Convert `src` into `dst` (same length).
    fn load(src: &[Self], dst: &mut [Self::C]);
    /// Round `src` into `dst` (same length).
    fn store(src: &[Self::C], dst: &mut [Self]);
    /// The chunk itself when it already is in the compute type (no staging copy needed).
    fn as_computed(chunk: &[Self]) -> Option<&[Self::C]> {
        let _ = chunk;
        None
    }
    /// The chunk itself, writable, when it already is in the compute type.
    fn as_computed_mut(chunk: &mut [Self]) -> Option<&mut [Self::C]> {
        let _ = chunk;
        None
    }
}

/// f32 and f64 logits are computed in their own type: read and written where they are.
macro_rules! computed_as_itself {
    ($($t:ty),*) => {$(
        impl Logit for $t {
            type C = $t;
            #[inline(always)]
            fn load(src: &[Self], dst: &mut [$t]) {
                dst.copy_from_slice(src);
            }
            #[inline(always)]
            fn store(src: &[$t], dst: &mut [Self]) {
                dst.copy_from_slice(src);
            }
            #[inline(always)]
            fn as_computed(chunk: &[Self]) -> Option<&[$t]> {
                Some(chunk)
            }
            #[inline(always)]
            fn as_computed_mut(chunk: &mut [Self]) -> Option<&mut [$t]> {
                Some(chunk)
            }
        }
    )*};
}
computed_as_itself!(f32, f64);

impl Logit for f16 {
    type C = f32;
    #[inline(always)]
    fn load(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    #[inline(always)]
    fn store(src: &[f32], dst: &mut [Self]) {
        dst.convert_from_f32_slice(src);
    }
}

impl Logit for bf16 {
    type C = f32;
    #[inline(always)]
    fn load(src: &[Self], dst: &mut [f32]) {
        for (out, value) in dst.iter_mut().zip(src) {
            *out = f32::from_bits(u32::from(value.to_bits()) << 16);
        }
    }
    #[inline(always)]
    fn store(src: &[f32], dst: &mut [Self]) {
        // Round to nearest even on the bit pattern; NaN stays a (quiet) NaN.
        for (out, &value) in dst.iter_mut().zip(src) {
            let bits = value.to_bits();
            let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
            let nan = ((bits >> 16) as u16) | 0x0040;
            *out = bf16::from_bits(if value.is_nan() { nan } else { rounded });
        }
    }
}

/// An address range to prefetch (possibly past the end of the logits: prefetches of
/// addresses nothing maps are dropped, never faulted).
#[derive(Clone, Copy)]
pub struct Upcoming {
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Upcoming {
    /// The memory right after `chunk`, as long as `chunk` itself.
    pub fn after<T>(chunk: &[T]) -> Self {
        let start = chunk.as_ptr_range().end as usize;
        Self {
            start,
            end: start + std::mem::size_of_val(chunk),
        }
    }
}

/// Per-call constants of the row kernel.
struct RowConfig<C> {
    softcap: Option<(C, C)>,
    smoothing: f64,
    z_loss_scale: f64,
    gradient_scale: f64,
    vocab: usize,
}

#[inline(always)]
fn apply_softcap<C: Compute>(chunk: &mut [C], softcap: Option<(C, C)>) {
    if let Some((cap, inverse)) = softcap {
        for value in chunk.iter_mut() {
            *value = cap * (*value * inverse).tanh();
        }
    }
}

/// Max of a chunk, ignoring NaN (NaN is propagated through the exponentials instead).
#[inline(always)]
pub(super) fn chunk_max<C: Compute>(chunk: &[C]) -> C {
    let mut lanes = [C::NEG_INFINITY; LANES];
    let mut blocks = chunk.chunks_exact(LANES);
    for block in &mut blocks {
        for (lane, &value) in lanes.iter_mut().zip(block) {
            *lane = if value > *lane { value } else { *lane };
        }
    }
    let mut best = C::NEG_INFINITY;
    for &value in lanes.iter().chain(blocks.remainder()) {
        best = if value > best { value } else { best };
    }
    best
}

/// `Σ x` over a chunk (for label smoothing).
#[inline(always)]
fn chunk_sum<C: Compute>(chunk: &[C]) -> f64 {
    let mut lanes = [C::default(); LANES];
    let mut blocks = chunk.chunks_exact(LANES);
    for block in &mut blocks {
        for (lane, &value) in lanes.iter_mut().zip(block) {
            *lane = *lane + value;
        }
    }
    let partial: f64 = lanes.iter().map(|v| v.to_f64()).sum();
    partial + blocks.remainder().iter().map(|v| v.to_f64()).sum::<f64>()
}

/// Write `exp(x − max)` of each `x` of `src` into `dst` (as long) and return their sum.
#[inline(always)]
pub(super) fn chunk_exp_sum<C: Compute>(src: &[C], dst: &mut [C], max: C) -> f64 {
    dst.copy_from_slice(src);
    chunk_exp_sum_in_place(dst, max)
}

/// Replace each `x` of a chunk by `exp(x − max)` and return their sum. A chunk whose max is
/// −inf (all −inf or NaN) becomes zeros, or NaN where it held NaN.
#[inline(always)]
pub(super) fn chunk_exp_sum_in_place<C: Compute>(values: &mut [C], max: C) -> f64 {
    if max == C::NEG_INFINITY {
        let mut total = 0.0;
        for value in values.iter_mut() {
            *value = if value.is_nan() { *value } else { C::default() };
            total += value.to_f64();
        }
        return total;
    }
    // A plain map vectorises reliably; the sum then re-reads the chunk from L1.
    for value in values.iter_mut() {
        *value = (*value - max).exp();
    }
    chunk_sum(values)
}

/// Working memory of one task: the current row's exponentials (so pass 2 needs no second
/// `exp`), each chunk's max, and two chunk-sized staging buffers.
struct Scratch<C> {
    exps: Vec<C>,
    chunk_maxima: Vec<C>,
    staged: Vec<C>,
    grad: Vec<C>,
}

impl<C: Compute> Scratch<C> {
    fn new(vocab: usize) -> Self {
        // No chunk is longer than a row: a small vocabulary needs no full-size buffers
        // (zeroing two 8 KB buffers was most of the memset perf put at ~16% of a (32, 64)
        // call).
        let chunk = vocab.min(CHUNK);
        Self {
            exps: vec![C::default(); vocab],
            chunk_maxima: vec![C::default(); vocab.div_ceil(CHUNK)],
            staged: vec![C::default(); chunk],
            grad: vec![C::default(); chunk],
        }
    }
}

/// Pass 1: `(lse, Σ c)` of one row; leaves `exp(c − chunk max)` and the chunk maxima in
/// `scratch` for pass 2.
#[inline(always)]
fn row_statistics<T: Logit>(
    row: &[T],
    config: &RowConfig<T::C>,
    scratch: &mut Scratch<T::C>,
) -> (f64, f64) {
    let mut max = f64::NEG_INFINITY;
    let mut sum_exp = 0.0_f64;
    let mut sum_logits = 0.0_f64;
    let chunks = row.chunks(CHUNK).zip(scratch.exps.chunks_mut(CHUNK));
    for ((chunk, exps), slot) in chunks.zip(scratch.chunk_maxima.iter_mut()) {
        let upcoming = Upcoming::after(chunk);
        // f32/f64 logits are read where they are; others (and softcapped ones) are staged
        // in the exponentials' own slot and replaced there.
        let (chunk_max, chunk_sum_exp) = match T::as_computed(chunk) {
            Some(values) if config.softcap.is_none() => {
                if config.smoothing > 0.0 {
                    sum_logits += chunk_sum(values);
                }
                let chunk_max = T::C::chunk_max(values);
                let sum = T::C::exp_shifted_sum(values, exps, chunk_max, upcoming);
                (chunk_max, sum)
            }
            _ => {
                T::load(chunk, exps);
                apply_softcap(exps, config.softcap);
                if config.smoothing > 0.0 {
                    sum_logits += chunk_sum(exps);
                }
                let chunk_max = T::C::chunk_max(exps);
                (
                    chunk_max,
                    T::C::exp_shifted_sum_in_place(exps, chunk_max, upcoming),
                )
            }
        };
        *slot = chunk_max;
        let chunk_max = chunk_max.to_f64();
        // A chunk with max −inf (all masked, or NaN beside −inf) holds zeros (or NaN) and
        // adds them unscaled: scaling by exp(−inf − −inf) would turn the row into NaN. While
        // every chunk so far was −inf, the sum so far scales by 0 (no libm call needed).
        if chunk_max == f64::NEG_INFINITY {
            sum_exp += chunk_sum_exp;
        } else if chunk_max > max {
            let rescale = if max == f64::NEG_INFINITY {
                0.0
            } else {
                (max - chunk_max).exp()
            };
            sum_exp = sum_exp * rescale + chunk_sum_exp;
            max = chunk_max;
        } else {
            sum_exp += chunk_sum_exp * (chunk_max - max).exp();
        }
    }
    (max + sum_exp.ln(), sum_logits)
}

/// The (softcapped) logit at `index`.
#[inline(always)]
fn logit_at<T: Logit>(row: &[T], index: usize, config: &RowConfig<T::C>) -> f64 {
    let mut staged = [T::C::default()];
    T::load(&row[index..=index], &mut staged);
    apply_softcap(&mut staged, config.softcap);
    staged[0].to_f64()
}

/// Pass 2: write the scaled gradient of one row from the exponentials pass 1 left behind.
/// `source` is the row to re-read for the softcap's chain rule (None: `row_out` itself).
#[inline(always)]
fn write_row_gradient<T: Logit>(
    source: Option<&[T]>,
    row_out: &mut [T],
    target: usize,
    lse: f64,
    config: &RowConfig<T::C>,
    scratch: &mut Scratch<T::C>,
) {
    let scale = config.gradient_scale;
    let prob_factor = (1.0 + 2.0 * config.z_loss_scale * lse) * scale;
    let minus_uniform = T::C::from_f64(-config.smoothing / config.vocab as f64 * scale);
    let target_term = T::C::from_f64((1.0 - config.smoothing) * scale);
    for (k, (exps, &chunk_max)) in scratch
        .exps
        .chunks(CHUNK)
        .zip(&scratch.chunk_maxima)
        .enumerate()
    {
        let start = k * CHUNK;
        let len = exps.len();
        // softmax_j = exp(c_j − chunk max) · exp(chunk max − lse)
        let factor = T::C::from_f64((chunk_max.to_f64() - lse).exp() * prob_factor);
        let target_in_chunk = target.checked_sub(start).filter(|&at| at < len);
        let out = &mut row_out[start..start + len];
        // f32/f64 without a softcap: written straight into the output, no staging.
        if config.softcap.is_none()
            && let Some(out) = T::as_computed_mut(out)
        {
            scaled_softmax(
                out,
                exps,
                factor,
                minus_uniform,
                target_in_chunk,
                target_term,
            );
            continue;
        }
        let grad = &mut scratch.grad[..len];
        scaled_softmax(
            grad,
            exps,
            factor,
            minus_uniform,
            target_in_chunk,
            target_term,
        );
        if let Some((_, inverse)) = config.softcap {
            let staged = &mut scratch.staged[..len];
            match source {
                Some(source) => T::load(&source[start..start + len], staged),
                None => T::load(out, staged),
            }
            apply_softcap(staged, config.softcap);
            let one = T::C::from_f64(1.0);
            for (g, &c) in grad.iter_mut().zip(staged.iter()) {
                let t = c * inverse;
                *g = *g * (one - t * t);
            }
        }
        T::store(grad, out);
    }
}

/// `exps · factor + minus_uniform` into `out`, less `target_term` at the target (if any).
#[inline(always)]
fn scaled_softmax<C: Compute>(
    out: &mut [C],
    exps: &[C],
    factor: C,
    minus_uniform: C,
    target: Option<usize>,
    target_term: C,
) {
    for (g, &e) in out.iter_mut().zip(exps) {
        *g = e.mul_add(factor, minus_uniform);
    }
    if let Some(g) = target.and_then(|at| out.get_mut(at)) {
        *g = *g - target_term;
    }
}

/// The rows one task owns: where it reads logits and where it writes the gradient.
enum BlockIo<'a, T> {
    Forward(&'a [T]),
    Separate(&'a [T], &'a mut [T]),
    InPlace(&'a mut [T]),
}

struct Block<'a, T> {
    io: BlockIo<'a, T>,
    targets: &'a [u32],
    losses: &'a mut [f64],
    lse: &'a mut [f32],
}

#[inline(always)]
fn run_block<T: Logit>(block: Block<'_, T>, config: &RowConfig<T::C>) {
    let vocab = config.vocab;
    let mut scratch = Scratch::<T::C>::new(vocab);
    let Block {
        mut io,
        targets,
        losses,
        lse,
    } = block;
    for (row, &target) in targets.iter().enumerate() {
        let span = row * vocab..(row + 1) * vocab;
        if target == NO_TARGET {
            match &mut io {
                BlockIo::Forward(_) => {}
                BlockIo::Separate(_, out) => out[span].fill(T::default()),
                BlockIo::InPlace(out) => out[span].fill(T::default()),
            }
            continue;
        }
        let target = target as usize;
        let row_in: &[T] = match &io {
            BlockIo::Forward(input) | BlockIo::Separate(input, _) => &input[span.clone()],
            BlockIo::InPlace(inout) => &inout[span.clone()],
        };
        let (row_lse, sum_logits) = row_statistics(row_in, config, &mut scratch);
        let target_logit = logit_at(row_in, target, config);
        let smoothing = config.smoothing;
        losses[row] =
            row_lse - (1.0 - smoothing) * target_logit - smoothing / vocab as f64 * sum_logits
                + config.z_loss_scale * row_lse * row_lse;
        lse[row] = row_lse as f32;
        match &mut io {
            BlockIo::Forward(_) => {}
            BlockIo::Separate(input, out) => write_row_gradient(
                Some(&input[span.clone()]),
                &mut out[span],
                target,
                row_lse,
                config,
                &mut scratch,
            ),
            BlockIo::InPlace(inout) => write_row_gradient(
                None,
                &mut inout[span],
                target,
                row_lse,
                config,
                &mut scratch,
            ),
        }
    }
}

/// The same block function compiled for AVX2/FMA, so the chunk loops use 8-wide vectors.
///
/// # Safety
/// Only call on a CPU that supports AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_block_avx2<T: Logit>(block: Block<'_, T>, config: &RowConfig<T::C>) {
    run_block(block, config);
}

fn run_block_dispatch<T: Logit>(block: Block<'_, T>, config: &RowConfig<T::C>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the running CPU supports AVX2 and FMA, checked just above.
        unsafe { run_block_avx2(block, config) };
        return;
    }
    run_block(block, config);
}

/// Where a loss call reads its logits and writes its gradient.
pub enum Gradient<'a, T> {
    /// Loss only.
    None(&'a [T]),
    /// Read the first slice, write the gradient into the second (same length).
    Into(&'a [T], &'a mut [T]),
    /// Overwrite the logits with their gradient.
    InPlace(&'a mut [T]),
}

/// Causal-LM cross-entropy of `logits` (row-major `problem.rows × problem.vocab`) against
/// `labels` (one per row, before the shift), with the gradient written as `io` asks.
///
/// # Errors
/// [`Error::ShapeMismatch`] when a buffer's length does not match `problem`,
/// [`Error::InvalidArgument`] for a bad option or label (nothing is written then), and
/// pool start-up failures.
pub fn causal_lm_loss<T: Logit, L: Copy + Into<i64>>(
    io: Gradient<'_, T>,
    labels: &[L],
    problem: &Problem,
    options: &LossOptions,
) -> Result<LossOutput> {
    options.validate()?;
    let elements = problem.elements();
    let expect = |arg: &'static str, len: usize| {
        if len == elements {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                arg,
                expected: format!("{} x {} = {elements} elements", problem.rows, problem.vocab),
                got: format!("{len} elements"),
            })
        }
    };
    match &io {
        Gradient::None(logits) => expect("logits", logits.len())?,
        Gradient::Into(logits, grad) => {
            expect("logits", logits.len())?;
            expect("grad", grad.len())?;
        }
        Gradient::InPlace(logits) => expect("logits", logits.len())?,
    }
    let (targets, valid_rows) = problem.targets(labels, options.ignore_index)?;
    if let Gradient::Into(_, grad) = &io {
        advise_huge_pages(grad);
    }
    let config = RowConfig {
        softcap: options
            .softcap
            .map(|cap| (T::C::from_f64(cap), T::C::from_f64(1.0 / cap))),
        smoothing: options.label_smoothing,
        z_loss_scale: options.z_loss_scale,
        gradient_scale: gradient_scale(options, valid_rows),
        vocab: problem.vocab,
    };
    let rows = problem.rows;
    let mut losses = vec![0.0_f64; rows];
    let mut lse = vec![f32::NAN; rows];
    let vocab = problem.vocab;
    let process = |threads: usize| {
        let block_rows = rows
            .div_ceil(TASKS_PER_THREAD * threads)
            .min(MAX_TASK_ELEMENTS / vocab)
            .max(1);
        split_blocks(io, &targets, &mut losses, &mut lse, block_rows, vocab)
    };
    if elements < SERIAL_ELEMENTS {
        for block in process(1) {
            run_block_dispatch(block, &config);
        }
    } else {
        parallel::install(|| {
            process(rayon::current_num_threads())
                .into_par_iter()
                .for_each(|block| run_block_dispatch(block, &config));
        })?;
    }
    // From +0.0: an empty f64 `sum()` is -0.0, which an empty batch would print as its loss.
    let total = losses.iter().fold(0.0_f64, |total, &row| total + row);
    let loss = match options.reduction {
        Reduction::Mean => match options.num_items_in_batch {
            Some(items) => total / items,
            None if valid_rows == 0 => 0.0,
            None => total / valid_rows as f64,
        },
        Reduction::Sum | Reduction::None => total,
    };
    let per_row = if options.reduction == Reduction::None {
        losses
    } else {
        Vec::new()
    };
    Ok(LossOutput {
        loss,
        per_row,
        lse,
        valid_rows,
    })
}

/// Cut every per-row buffer into tasks of `block_rows` rows.
fn split_blocks<'a, T>(
    io: Gradient<'a, T>,
    targets: &'a [u32],
    losses: &'a mut [f64],
    lse: &'a mut [f32],
    block_rows: usize,
    vocab: usize,
) -> Vec<Block<'a, T>> {
    let span = block_rows * vocab;
    let ios: Vec<BlockIo<'a, T>> = match io {
        Gradient::None(logits) => logits.chunks(span).map(BlockIo::Forward).collect(),
        Gradient::Into(logits, grad) => logits
            .chunks(span)
            .zip(grad.chunks_mut(span))
            .map(|(input, out)| BlockIo::Separate(input, out))
            .collect(),
        Gradient::InPlace(logits) => logits.chunks_mut(span).map(BlockIo::InPlace).collect(),
    };
    ios.into_iter()
        .zip(targets.chunks(block_rows))
        .zip(losses.chunks_mut(block_rows))
        .zip(lse.chunks_mut(block_rows))
        .map(|(((io, targets), losses), lse)| Block {
            io,
            targets,
            losses,
            lse,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_two_ulp_and_handles_the_edges() {
        let mut x = -87.0_f32;
        while x < 0.0 {
            let fast = Compute::exp(x);
            let exact = f64::from(x).exp();
            let ulp = f64::from(f32::from_bits((exact as f32).to_bits() + 1)) - exact;
            assert!(
                (f64::from(fast) - exact).abs() <= 2.0 * ulp.abs(),
                "exp({x}) = {fast}, want {exact}"
            );
            x += 0.0137;
        }
        assert_eq!(Compute::exp(f32::NEG_INFINITY), 0.0);
        assert!(Compute::exp(f32::NAN).is_nan());
        assert_eq!(Compute::exp(0.0_f32), 1.0);
    }

    #[test]
    fn bf16_store_rounds_to_nearest_even_and_keeps_nan() {
        let values = [
            1.0_f32,
            1.003_906_2,
            1.011_718_8,
            -3.5,
            f32::INFINITY,
            f32::NAN,
        ];
        let mut out = [bf16::ZERO; 6];
        bf16::store(&values, &mut out);
        for (&value, &rounded) in values.iter().zip(&out) {
            if value.is_nan() {
                assert!(rounded.is_nan());
            } else {
                assert_eq!(rounded, bf16::from_f32(value), "{value}");
            }
        }
    }

    fn reference(logits: &[f64], vocab: usize, target: usize) -> (f64, Vec<f64>) {
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + logits.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let grad = (0..vocab)
            .map(|j| (logits[j] - lse).exp() - f64::from(u8::from(j == target)))
            .collect();
        (lse - logits[target], grad)
    }

    /// Unshifted loss and gradient of `labels.len()` rows of `vocab` f32 logits.
    fn loss_and_grad(
        logits: &[f32],
        labels: &[i64],
        vocab: usize,
        reduction: Reduction,
    ) -> (LossOutput, Vec<f32>) {
        let problem = Problem::new(&[labels.len(), vocab], &[labels.len()], false).unwrap();
        let options = LossOptions {
            reduction,
            ..LossOptions::default()
        };
        let mut grad = vec![0.0_f32; logits.len()];
        let out = causal_lm_loss(
            Gradient::Into(logits, &mut grad),
            labels,
            &problem,
            &options,
        )
        .unwrap();
        (out, grad)
    }

    #[test]
    fn matches_a_direct_computation_across_chunk_boundaries() {
        let vocab = CHUNK * 2 + 37;
        let logits: Vec<f32> = (0..vocab * 3)
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 5.0)
            .collect();
        let labels = [5_i64, vocab as i64 - 1, 9];
        let (out, grad) = loss_and_grad(&logits, &labels, vocab, Reduction::Sum);
        let mut expected = 0.0;
        for (row, &label) in labels.iter().enumerate() {
            let wide: Vec<f64> = logits[row * vocab..(row + 1) * vocab]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let (loss, g) = reference(&wide, vocab, label as usize);
            expected += loss;
            for (j, gj) in g.iter().enumerate() {
                assert!((f64::from(grad[row * vocab + j]) - gj).abs() < 1e-6);
            }
        }
        assert!(
            (out.loss - expected).abs() < 1e-4,
            "{} vs {expected}",
            out.loss
        );
    }

    #[test]
    fn whole_chunks_of_negative_infinity_are_masked_not_nan() {
        // Row 0 masks its first two chunks, row 1 a chunk in the middle, row 2 all but
        // the target: each is the plain loss over its unmasked entries.
        let vocab = CHUNK * 3 + 11;
        let masks = [0..2 * CHUNK + 5, CHUNK..2 * CHUNK, 0..vocab - 1];
        let labels = [2 * CHUNK + 7, 3, vocab - 1];
        let mut logits: Vec<f32> = (0..vocab * 3)
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 5.0)
            .collect();
        for (row, mask) in masks.iter().enumerate() {
            logits[row * vocab..(row + 1) * vocab][mask.clone()].fill(f32::NEG_INFINITY);
        }
        let (out, grad) = loss_and_grad(
            &logits,
            &labels.map(|label| label as i64),
            vocab,
            Reduction::None,
        );
        for (row, mask) in masks.iter().enumerate() {
            let kept: Vec<usize> = (0..vocab).filter(|j| !mask.contains(j)).collect();
            let wide: Vec<f64> = kept
                .iter()
                .map(|&j| f64::from(logits[row * vocab + j]))
                .collect();
            let target = kept.iter().position(|&j| j == labels[row]).unwrap();
            let (want, want_grad) = reference(&wide, kept.len(), target);
            assert!((out.per_row[row] - want).abs() < 1e-5, "row {row}");
            let row_grad = &grad[row * vocab..(row + 1) * vocab];
            assert!(mask.clone().all(|j| row_grad[j] == 0.0), "row {row}");
            for (&j, g) in kept.iter().zip(&want_grad) {
                assert!((f64::from(row_grad[j]) - g).abs() < 1e-6, "row {row}, {j}");
            }
        }
    }

    #[test]
    fn all_ignored_mean_is_exactly_zero_with_zero_gradient() {
        let logits = vec![1.5_f32; 4 * 7];
        let mut grad = vec![9.0_f32; logits.len()];
        let problem = Problem::new(&[4, 7], &[4], true).unwrap();
        let out = causal_lm_loss(
            Gradient::Into(&logits, &mut grad),
            &[-100_i64; 4],
            &problem,
            &LossOptions::default(),
        )
        .unwrap();
        assert_eq!(out.loss, 0.0);
        assert!(grad.iter().all(|&g| g == 0.0));
    }
}
