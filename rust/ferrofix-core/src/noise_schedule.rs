//! Continuous-time diffusion noise schedules, evaluated exactly and in parallel.
//!
//! Conventions (MDLM/SEDD): total noise σ(t) on t ∈ [0, 1], its rate σ'(t), keep probability
//! α(t) = exp(−σ(t)), mask probability 1 − α(t) and the ELBO weight σ'(t) / expm1(σ(t)).
//!
//! Invariants:
//! - every value is computed in f64 from the input element and rounded once to the input's
//!   type. For outputs narrower than f64, σ and σ' come from branch-free polynomials
//!   (`polynomial`, vectorised) within 1e-15 relative of the libm formulas, so the rounded
//!   result is the formula's rounding or, within 1e-15 of a tie, its neighbour;
//! - each schedule uses the numerically stable form of its formulas (log1p/expm1, α and 1 − α
//!   written directly instead of through exp(−σ), σ from whichever of them is not near 1,
//!   the cosine ELBO weights as cotangents; see `stable_forms`), so nothing cancels near
//!   t = 0 or t = 1;
//! - t outside [0, 1] (or NaN) is an error naming `t`, the first bad index and its value; an
//!   inverse takes values in the schedule's range (widened by [`INVERSE_TOLERANCE`] for
//!   rounded inputs) and returns t clamped to [0, 1];
//! - an element depends only on its own input, so results are identical for any thread count.

mod bit_select;
pub mod masking;
mod polynomial;
mod stable_forms;

use rayon::prelude::*;

use self::stable_forms::{HalfTurn, neg_ln_alpha};
use crate::error::{Error, Result};
use crate::{memory, parallel};

/// Elements per parallel task: ~20-50 us of transcendental work, far above rayon's overhead.
const CHUNK_LEN: usize = 16_384;
/// Rough cost of one quantity at one `t` (a log, exp or cosine), for deciding whether an
/// evaluation is worth waking the pool for.
const NS_PER_VALUE: u64 = 10;
/// Relative slack on an inverse's input range: an f32-rounded σ(1) may exceed the exact
/// σ(1) by 6e-8 relative, and the result is clamped back into [0, 1] anyway.
pub const INVERSE_TOLERANCE: f64 = 1e-6;
const HALF_PI: f64 = std::f64::consts::FRAC_PI_2;

/// A continuous-time schedule with validated parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// σ(t) = −log1p(−a·t), the MDLM default; a = 1 − eps or 1 − exp(−sigma_max).
    LogLinear {
        /// The slope a ∈ (0, 1).
        a: f64,
    },
    /// σ(t) = σmin + t·(σmax − σmin).
    Linear {
        /// σ(0).
        sigma_min: f64,
        /// σ(1).
        sigma_max: f64,
    },
    /// α(t) = eps + (1 − eps)·cos(πt/2).
    Cosine {
        /// α(1).
        eps: f64,
    },
    /// α(t) = eps + (1 − eps)·cos²(πt/2).
    CosineSquared {
        /// α(1).
        eps: f64,
    },
    /// σ(t) = σmin^(1−t)·σmax^t.
    Geometric {
        /// σ(0).
        sigma_min: f64,
        /// σ(1).
        sigma_max: f64,
    },
}

/// What to compute from each input element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// σ(t).
    TotalNoise,
    /// σ'(t).
    NoiseRate,
    /// α(t) = exp(−σ(t)).
    Alpha,
    /// 1 − α(t).
    MaskProbability,
    /// σ'(t) / expm1(σ(t)); +inf where σ(t) = 0.
    LossWeight,
    /// t from σ.
    TFromTotalNoise,
    /// t from σ'.
    TFromNoiseRate,
}

impl Quantity {
    const ALL: [(&'static str, Quantity); 7] = [
        ("total_noise", Self::TotalNoise),
        ("noise_rate", Self::NoiseRate),
        ("alpha", Self::Alpha),
        ("mask_probability", Self::MaskProbability),
        ("loss_weight", Self::LossWeight),
        ("t_from_total_noise", Self::TFromTotalNoise),
        ("t_from_noise_rate", Self::TFromNoiseRate),
    ];

    /// Parse a quantity name (the Python method's name).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `quantity` and listing the names.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, q)| q)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                Error::invalid(
                    "quantity",
                    format!("must be one of {}; got {name:?}", names.join(", ")),
                )
            })
    }

    /// The argument name errors use for this quantity's input.
    fn input_name(self) -> &'static str {
        match self {
            Self::TFromTotalNoise => "total_noise",
            Self::TFromNoiseRate => "noise_rate",
            _ => "t",
        }
    }
}

fn check_eps(eps: f64) -> Result<f64> {
    if eps > 0.0 && eps < 1.0 {
        Ok(eps)
    } else {
        Err(Error::invalid(
            "eps",
            format!("must be in (0, 1), got {eps}"),
        ))
    }
}

/// 0 <= σmin (or 0 < σmin when `zero_allowed` is false) < σmax, all finite.
fn check_sigma_range(sigma_min: f64, sigma_max: f64, zero_allowed: bool) -> Result<()> {
    let min_ok = if zero_allowed {
        sigma_min >= 0.0
    } else {
        sigma_min > 0.0
    };
    if !(min_ok && sigma_min.is_finite()) {
        let bound = if zero_allowed { ">= 0" } else { "> 0" };
        return Err(Error::invalid(
            "sigma_min",
            format!("must be finite and {bound}, got {sigma_min}"),
        ));
    }
    if !(sigma_max.is_finite() && sigma_max > sigma_min) {
        return Err(Error::invalid(
            "sigma_max",
            format!("must be finite and greater than sigma_min ({sigma_min}), got {sigma_max}"),
        ));
    }
    Ok(())
}

impl Schedule {
    /// Build a schedule from its kind and parameters as Python names them:
    /// `loglinear` (eps), `loglinear_sigma_max` (sigma_max), `linear` (sigma_min, sigma_max),
    /// `cosine` (eps), `cosine_squared` (eps), `geometric` (sigma_min, sigma_max). A one-
    /// parameter kind ignores `second`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `kind` or the bad parameter and its allowed range.
    pub fn new(kind: &str, first: f64, second: f64) -> Result<Self> {
        Ok(match kind {
            "loglinear" => Self::LogLinear {
                a: 1.0 - check_eps(first)?,
            },
            "loglinear_sigma_max" => {
                if !(first.is_finite() && first > 0.0) {
                    return Err(Error::invalid(
                        "sigma_max",
                        format!("must be finite and > 0, got {first}"),
                    ));
                }
                Self::LogLinear {
                    a: -(-first).exp_m1(),
                }
            }
            "linear" => {
                check_sigma_range(first, second, true)?;
                Self::Linear {
                    sigma_min: first,
                    sigma_max: second,
                }
            }
            "cosine" => Self::Cosine {
                eps: check_eps(first)?,
            },
            "cosine_squared" => Self::CosineSquared {
                eps: check_eps(first)?,
            },
            "geometric" => {
                check_sigma_range(first, second, false)?;
                Self::Geometric {
                    sigma_min: first,
                    sigma_max: second,
                }
            }
            _ => {
                return Err(Error::invalid(
                    "kind",
                    format!(
                        "must be one of loglinear, loglinear_sigma_max, linear, cosine, \
                         cosine_squared, geometric; got {kind:?}"
                    ),
                ));
            }
        })
    }

    /// The schedule's name in messages.
    fn name(&self) -> &'static str {
        match self {
            Self::LogLinear { .. } => "LogLinearSchedule",
            Self::Linear { .. } => "LinearSchedule",
            Self::Cosine { .. } => "CosineSchedule",
            Self::CosineSquared { .. } => "CosineSquaredSchedule",
            Self::Geometric { .. } => "GeometricSchedule",
        }
    }

    /// σ(t).
    #[inline]
    pub fn total_noise(&self, t: f64) -> f64 {
        match *self {
            Self::LogLinear { a } => neg_ln_alpha(self.alpha(t), a * t, f64::ln),
            Self::Linear {
                sigma_min,
                sigma_max,
            } => sigma_min + t * (sigma_max - sigma_min),
            Self::Cosine { .. } | Self::CosineSquared { .. } => self.rate_and_total(t).1,
            Self::Geometric {
                sigma_min,
                sigma_max,
            } => sigma_min.powf(1.0 - t) * sigma_max.powf(t),
        }
    }

    /// σ'(t).
    #[inline]
    pub fn noise_rate(&self, t: f64) -> f64 {
        match *self {
            Self::LogLinear { a } => a / self.alpha(t),
            Self::Linear {
                sigma_min,
                sigma_max,
            } => sigma_max - sigma_min,
            Self::Cosine { .. } | Self::CosineSquared { .. } => self.rate_and_total(t).0,
            Self::Geometric {
                sigma_min,
                sigma_max,
            } => self.total_noise(t) * (sigma_max.ln() - sigma_min.ln()),
        }
    }

    /// (σ'(t), σ(t)) in one go, bit for bit [`Self::noise_rate`] and [`Self::total_noise`],
    /// sharing what the two have in common (sin, cos and α for the cosine family, σ for the
    /// geometric schedule). Always inlined: inside a loop over elements the per-schedule
    /// constants (the geometric ln σmax − ln σmin) are then computed once, not per element.
    #[inline(always)]
    pub fn rate_and_total(&self, t: f64) -> (f64, f64) {
        match *self {
            Self::Cosine { eps } | Self::CosineSquared { eps } => {
                self.cosine_rate_and_total(eps, HalfTurn::at(t, f64::sin_cos), f64::ln)
            }
            Self::Geometric {
                sigma_min,
                sigma_max,
            } => {
                let sigma = self.total_noise(t);
                (sigma * (sigma_max.ln() - sigma_min.ln()), sigma)
            }
            Self::LogLinear { .. } | Self::Linear { .. } => {
                (self.noise_rate(t), self.total_noise(t))
            }
        }
    }

    /// (σ', σ) of the cosine family from θ = πt/2's pieces, with `log` for σ:
    /// σ' = (π/2)·(1 − eps)·sin θ / α, or with sin(πt) = 2·sin θ·cos θ for cosine-squared.
    #[inline(always)]
    fn cosine_rate_and_total(&self, eps: f64, h: HalfTurn, log: impl Fn(f64) -> f64) -> (f64, f64) {
        let squared = matches!(self, Self::CosineSquared { .. });
        let alpha = eps + (1.0 - eps) * if squared { h.cos * h.cos } else { h.cos };
        let mask = (1.0 - eps)
            * if squared {
                h.sin * h.sin
            } else {
                h.one_minus_cos
            };
        let slope = if squared { 2.0 * h.sin * h.cos } else { h.sin };
        (
            HALF_PI * (1.0 - eps) * slope / alpha,
            neg_ln_alpha(alpha, mask, log),
        )
    }

    /// [`Self::rate_and_total`] from the branch-free polynomials of [`polynomial`], which
    /// the compiler vectorises: within 1e-15 relative of it, for outputs narrower than f64.
    #[inline(always)]
    fn rate_and_total_polynomial(&self, t: f64) -> (f64, f64) {
        match *self {
            Self::LogLinear { a } => {
                let alpha = self.alpha(t);
                (a / alpha, neg_ln_alpha(alpha, a * t, polynomial::ln))
            }
            Self::Cosine { eps } | Self::CosineSquared { eps } => self.cosine_rate_and_total(
                eps,
                HalfTurn::at(t, polynomial::sin_cos_eighth_turn),
                polynomial::ln,
            ),
            // σmin^(1−t)·σmax^t = exp((1−t)·ln σmin + t·ln σmax).
            Self::Geometric {
                sigma_min,
                sigma_max,
            } => {
                let (low, high) = (sigma_min.ln(), sigma_max.ln());
                let sigma = polynomial::exp((1.0 - t) * low + t * high);
                (sigma * (high - low), sigma)
            }
            Self::Linear { .. } => self.rate_and_total(t),
        }
    }

    /// α(t) = exp(−σ(t)), written directly where the schedule defines α.
    #[inline]
    pub fn alpha(&self, t: f64) -> f64 {
        match *self {
            // 1 − a·t = (1 − t) + (1 − a)·t: near t = 1 the plain form cancels the rounding
            // of a·t (250 ulp of α at eps = 1e-3), while here 1 − t and 1 − a (a ≥ 1/2) are
            // exact and the two terms add without cancelling.
            Self::LogLinear { a } => (1.0 - t) + (1.0 - a) * t,
            Self::Cosine { eps } => eps + (1.0 - eps) * HalfTurn::at(t, f64::sin_cos).cos,
            Self::CosineSquared { eps } => {
                let c = HalfTurn::at(t, f64::sin_cos).cos;
                eps + (1.0 - eps) * (c * c)
            }
            Self::Linear { .. } | Self::Geometric { .. } => (-self.total_noise(t)).exp(),
        }
    }

    /// 1 − α(t) without cancellation near t = 0.
    #[inline]
    pub fn mask_probability(&self, t: f64) -> f64 {
        match *self {
            Self::LogLinear { a } => a * t,
            Self::Cosine { eps } => (1.0 - eps) * HalfTurn::at(t, f64::sin_cos).one_minus_cos,
            Self::CosineSquared { eps } => {
                let s = HalfTurn::at(t, f64::sin_cos).sin;
                (1.0 - eps) * (s * s)
            }
            Self::Linear { .. } | Self::Geometric { .. } => -(-self.total_noise(t)).exp_m1(),
        }
    }

    /// σ'(t) / expm1(σ(t)): exactly 1/t for log-linear; +inf where σ(t) = 0 (its limit).
    ///
    /// For the cosine family expm1(σ) = (1 − α)/α, and eps cancels from σ'·α/(1 − α):
    /// (π/2)·cot(πt/4) for cosine and π·cot(πt/2) for cosine-squared, with no cancellation
    /// as t → 0 (where the quotient of σ' and expm1(σ) loses digits, then divides by 0).
    /// At t = 0 both are +inf (π/2 over tan 0, or π·1 over sin 0).
    #[inline]
    pub fn loss_weight(&self, t: f64) -> f64 {
        match *self {
            Self::LogLinear { .. } => return 1.0 / t,
            Self::Cosine { .. } => return HALF_PI / (std::f64::consts::FRAC_PI_4 * t).tan(),
            Self::CosineSquared { .. } => {
                let h = HalfTurn::at(t, f64::sin_cos);
                return std::f64::consts::PI * h.cos / h.sin;
            }
            Self::Linear { .. } | Self::Geometric { .. } => {}
        }
        let denominator = self.total_noise(t).exp_m1();
        if denominator == 0.0 {
            f64::INFINITY
        } else {
            self.noise_rate(t) / denominator
        }
    }

    /// t from σ (σ inside the schedule's range).
    #[inline]
    pub fn t_from_total_noise(&self, sigma: f64) -> f64 {
        match *self {
            Self::LogLinear { a } => -(-sigma).exp_m1() / a,
            Self::Linear {
                sigma_min,
                sigma_max,
            } => (sigma - sigma_min) / (sigma_max - sigma_min),
            // m = 1 − cos θ = (1 − α)/(1 − eps), so θ = 2·asin(sqrt(m/2)): no acos near 1.
            Self::Cosine { eps } => {
                let m = -(-sigma).exp_m1() / (1.0 - eps);
                2.0 * (0.5 * m).sqrt().asin() / HALF_PI
            }
            // sin²θ = m and cos²θ = 1 − m: atan2 is well conditioned at both ends.
            Self::CosineSquared { eps } => {
                let m = -(-sigma).exp_m1() / (1.0 - eps);
                let kept = ((-sigma).exp() - eps) / (1.0 - eps);
                m.max(0.0).sqrt().atan2(kept.max(0.0).sqrt()) / HALF_PI
            }
            Self::Geometric {
                sigma_min,
                sigma_max,
            } => (sigma.ln() - sigma_min.ln()) / (sigma_max.ln() - sigma_min.ln()),
        }
    }

    /// t from σ', where σ' is monotone in t (see [`Self::noise_rate_range`]).
    #[inline]
    pub fn t_from_noise_rate(&self, rate: f64) -> f64 {
        match *self {
            Self::LogLinear { a } => 1.0 / a - 1.0 / rate,
            // x·(eps + (1−eps)·cos θ) = k·sin θ  <=>  R·sin(θ − φ) = x·eps with
            // R = hypot(k, x(1−eps)), φ = atan2(x(1−eps), k).
            Self::Cosine { eps } => {
                let k = HALF_PI * (1.0 - eps);
                let c = rate * (1.0 - eps);
                let theta = c.atan2(k) + (rate * eps / k.hypot(c)).asin();
                theta / HALF_PI
            }
            Self::Geometric {
                sigma_min,
                sigma_max,
            } => self.t_from_total_noise(rate / (sigma_max.ln() - sigma_min.ln())),
            // Not invertible: callers check `noise_rate_range` first.
            Self::Linear { .. } | Self::CosineSquared { .. } => f64::NAN,
        }
    }

    /// [σ(0), σ(1)].
    pub fn total_noise_range(&self) -> (f64, f64) {
        (self.total_noise(0.0), self.total_noise(1.0))
    }

    /// [σ'(0), σ'(1)], or why t cannot be recovered from σ'.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `noise_rate` for the linear schedule (σ' constant)
    /// and cosine-squared (σ' rises, then falls back to 0 at t = 1).
    pub fn noise_rate_range(&self) -> Result<(f64, f64)> {
        match self {
            Self::Linear { .. } => Err(Error::invalid(
                "noise_rate",
                "LinearSchedule has a constant noise rate, so t cannot be recovered from it",
            )),
            Self::CosineSquared { .. } => Err(Error::invalid(
                "noise_rate",
                "CosineSquaredSchedule's noise rate rises and then falls back to 0 at t = 1, \
                 so t cannot be recovered from it",
            )),
            _ => Ok((self.noise_rate(0.0), self.noise_rate(1.0))),
        }
    }

    /// The inputs `quantity` accepts, as a closed interval.
    fn domain(&self, quantity: Quantity) -> Result<(f64, f64)> {
        let widen = |(lo, hi): (f64, f64)| {
            let slack = INVERSE_TOLERANCE * lo.abs().max(hi.abs()).max(1.0);
            (lo - slack, hi + slack)
        };
        match quantity {
            Quantity::TFromTotalNoise => Ok(widen(self.total_noise_range())),
            Quantity::TFromNoiseRate => self.noise_rate_range().map(widen),
            _ => Ok((0.0, 1.0)),
        }
    }
}

pub use crate::dtype::Real;

/// Evaluate `quantities` of `schedule` at every element of `input`; `outputs[k][i]` gets
/// quantity `k` of `input[i]`. Several quantities share one pass over the input (`forward`
/// needs σ' and σ).
///
/// # Errors
/// [`Error::ShapeMismatch`] when an output's length differs from the input's;
/// [`Error::InvalidArgument`] naming the input (`t`, `total_noise` or `noise_rate`) with its
/// allowed range, the first bad index and its value; or when t cannot be recovered from σ'.
pub fn evaluate<T: Real>(
    schedule: &Schedule,
    quantities: &[Quantity],
    input: &[T],
    outputs: &mut [&mut [T]],
) -> Result<()> {
    let Some(&first) = quantities.first() else {
        return Ok(());
    };
    if quantities.len() != outputs.len()
        || quantities
            .iter()
            .any(|q| q.input_name() != first.input_name())
    {
        return Err(Error::invalid(
            "quantities",
            "need one output each and the same input",
        ));
    }
    if let Some(out) = outputs.iter().find(|o| o.len() != input.len()) {
        return Err(Error::ShapeMismatch {
            arg: "out",
            expected: format!("({},)", input.len()),
            got: format!("({},)", out.len()),
        });
    }
    let (lo, hi) = schedule.domain(first)?;
    // Split every output into the same chunks, transposed so each task owns one chunk of each.
    let mut chunked: Vec<Vec<&mut [T]>> = (0..input.len().div_ceil(CHUNK_LEN))
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for out in outputs.iter_mut() {
        for (slot, chunk) in chunked.iter_mut().zip(out.chunks_mut(CHUNK_LEN)) {
            slot.push(chunk);
        }
    }
    let schedule = *schedule;
    let values = input.len().saturating_mul(quantities.len());
    let first_bad = parallel::install_sized(values, NS_PER_VALUE, || {
        chunked
            .into_par_iter()
            .zip(input.par_chunks(CHUNK_LEN))
            .enumerate()
            .filter_map(|(chunk, (mut outs, xs))| {
                // `!(..)` also rejects NaN. A chunk with a bad input is not computed: the
                // whole call fails.
                if let Some(i) = xs
                    .iter()
                    .position(|x| !(x.to_f64() >= lo && x.to_f64() <= hi))
                {
                    return Some(chunk * CHUNK_LEN + i);
                }
                if let [rate, total] = &mut outs[..]
                    && quantities == [Quantity::NoiseRate, Quantity::TotalNoise]
                {
                    // forward(): both in one pass over the input.
                    fill_rate_and_total(schedule, xs, rate, total);
                } else {
                    for (out, &q) in outs.iter_mut().zip(quantities) {
                        fill_chunk(schedule, q, xs, out);
                    }
                }
                None
            })
            .min()
    })?;
    match first_bad {
        None => Ok(()),
        Some(index) => Err(out_of_domain(
            &schedule,
            first,
            (lo, hi),
            index,
            input[index].to_f64(),
        )),
    }
}

/// [`evaluate`] into new vectors, one per quantity.
///
/// Outputs are zeroed lazily by the allocator and advised for huge pages, so they are
/// faulted in by the parallel workers as they write, not by one thread up front.
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_new<T: Real + Default>(
    schedule: &Schedule,
    quantities: &[Quantity],
    input: &[T],
) -> Result<Vec<Vec<T>>> {
    let mut outputs: Vec<Vec<T>> = quantities
        .iter()
        .map(|_| {
            let out = vec![T::default(); input.len()];
            memory::advise_huge_pages(&out);
            out
        })
        .collect();
    let mut slices: Vec<&mut [T]> = outputs.iter_mut().map(Vec::as_mut_slice).collect();
    evaluate(schedule, quantities, input, &mut slices)?;
    Ok(outputs)
}

/// `$body` with `$s` bound to `$schedule` rebuilt from its own variant, expanded once per
/// variant: in each copy the variant is a constant and a per-element loop holds one formula
/// (with the variant unknown, LLVM speculatively computes every variant's sin/log for every
/// element: measured 4x slower). A macro, not a closure, so no copy depends on inlining.
macro_rules! with_known_variant {
    ($schedule:expr, |$s:ident| $body:expr) => {
        match $schedule {
            Schedule::LogLinear { a } => {
                let $s = Schedule::LogLinear { a };
                $body
            }
            Schedule::Linear {
                sigma_min,
                sigma_max,
            } => {
                let $s = Schedule::Linear {
                    sigma_min,
                    sigma_max,
                };
                $body
            }
            Schedule::Cosine { eps } => {
                let $s = Schedule::Cosine { eps };
                $body
            }
            Schedule::CosineSquared { eps } => {
                let $s = Schedule::CosineSquared { eps };
                $body
            }
            Schedule::Geometric {
                sigma_min,
                sigma_max,
            } => {
                let $s = Schedule::Geometric {
                    sigma_min,
                    sigma_max,
                };
                $body
            }
        }
    };
}

/// `quantity` of every (validated) element of `xs` into `out`.
fn fill_chunk<T: Real>(schedule: Schedule, quantity: Quantity, xs: &[T], out: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if T::NARROW && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the running CPU supports AVX2, checked just above.
        unsafe { fill_chunk_avx2(schedule, quantity, xs, out) };
        return;
    }
    with_known_variant!(schedule, |s| fill_quantity(s, quantity, xs, out));
}

/// σ' into `rate` and σ into `total` for every (validated) element of `xs`.
fn fill_rate_and_total<T: Real>(schedule: Schedule, xs: &[T], rate: &mut [T], total: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if T::NARROW && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the running CPU supports AVX2, checked just above.
        unsafe { fill_rate_and_total_avx2(schedule, xs, rate, total) };
        return;
    }
    with_known_variant!(schedule, |s| fill_pair(s, xs, rate, total));
}

/// [`fill_chunk`] compiled for AVX2: the polynomial path of narrow outputs runs on 4-lane
/// vectors (and rounds with one instruction instead of a libm call).
///
/// # Safety
/// Only call on a CPU that supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_chunk_avx2<T: Real>(
    schedule: Schedule,
    quantity: Quantity,
    xs: &[T],
    out: &mut [T],
) {
    with_known_variant!(schedule, |s| fill_quantity(s, quantity, xs, out));
}

/// [`fill_rate_and_total`] compiled for AVX2, as [`fill_chunk_avx2`].
///
/// # Safety
/// Only call on a CPU that supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_rate_and_total_avx2<T: Real>(
    schedule: Schedule,
    xs: &[T],
    rate: &mut [T],
    total: &mut [T],
) {
    with_known_variant!(schedule, |s| fill_pair(s, xs, rate, total));
}

#[inline(always)]
fn fill_pair<T: Real>(s: Schedule, xs: &[T], rate: &mut [T], total: &mut [T]) {
    for ((r, o), x) in rate.iter_mut().zip(total.iter_mut()).zip(xs) {
        let (sigma_rate, sigma) = if T::NARROW {
            s.rate_and_total_polynomial(x.to_f64())
        } else {
            s.rate_and_total(x.to_f64())
        };
        *r = T::from_f64(sigma_rate);
        *o = T::from_f64(sigma);
    }
}

#[inline(always)]
fn fill_quantity<T: Real>(s: Schedule, quantity: Quantity, xs: &[T], out: &mut [T]) {
    match quantity {
        // Narrow outputs take forward()'s polynomials, so σ and σ' agree with it bit for bit.
        Quantity::TotalNoise if T::NARROW => fill(xs, out, |x| s.rate_and_total_polynomial(x).1),
        Quantity::NoiseRate if T::NARROW => fill(xs, out, |x| s.rate_and_total_polynomial(x).0),
        Quantity::TotalNoise => fill(xs, out, |x| s.total_noise(x)),
        Quantity::NoiseRate => fill(xs, out, |x| s.noise_rate(x)),
        Quantity::Alpha => fill(xs, out, |x| s.alpha(x)),
        Quantity::MaskProbability => fill(xs, out, |x| s.mask_probability(x)),
        Quantity::LossWeight => fill(xs, out, |x| s.loss_weight(x)),
        // `+ 0.0` turns a clamped −0.0 into +0.0.
        Quantity::TFromTotalNoise => {
            fill(xs, out, |x| s.t_from_total_noise(x).clamp(0.0, 1.0) + 0.0)
        }
        Quantity::TFromNoiseRate => fill(xs, out, |x| s.t_from_noise_rate(x).clamp(0.0, 1.0) + 0.0),
    }
}

#[inline(always)]
fn fill<T: Real>(xs: &[T], out: &mut [T], formula: impl Fn(f64) -> f64) {
    for (o, x) in out.iter_mut().zip(xs) {
        *o = T::from_f64(formula(x.to_f64()));
    }
}

fn out_of_domain(
    schedule: &Schedule,
    quantity: Quantity,
    (lo, hi): (f64, f64),
    index: usize,
    value: f64,
) -> Error {
    let (name, (a, b)) = match quantity {
        Quantity::TFromTotalNoise => ("sigma", schedule.total_noise_range()),
        Quantity::TFromNoiseRate => ("sigma'", schedule.noise_rate_range().unwrap_or((lo, hi))),
        _ => ("", (0.0, 1.0)),
    };
    let range = if name.is_empty() {
        "[0, 1]".to_owned()
    } else {
        format!("[{a}, {b}] ({name}(0) to {name}(1) of {})", schedule.name())
    };
    Error::invalid(
        quantity.input_name(),
        format!("must be in {range}, got {value} at index {index}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Schedule> {
        vec![
            Schedule::new("loglinear", 1e-3, 0.0).unwrap(),
            Schedule::new("linear", 0.0, 10.0).unwrap(),
            Schedule::new("cosine", 1e-3, 0.0).unwrap(),
            Schedule::new("cosine_squared", 1e-3, 0.0).unwrap(),
            Schedule::new("geometric", 1e-4, 20.0).unwrap(),
        ]
    }

    #[test]
    fn published_log_linear_identities_hold() {
        let s = Schedule::new("loglinear", 1e-3, 0.0).unwrap();
        for t in [0.1, 0.5, 0.9] {
            assert_eq!(s.loss_weight(t), 1.0 / t);
            let a = 1.0 - 1e-3;
            assert!((s.alpha(t) - (-s.total_noise(t)).exp()).abs() < 1e-15);
            assert!((s.noise_rate(t) - a / (1.0 - a * t)).abs() < 1e-12);
        }
        let from_max = Schedule::new("loglinear_sigma_max", 5.0, 0.0).unwrap();
        assert!((from_max.total_noise(1.0) - 5.0).abs() < 1e-12);
    }

    #[test]
    fn inverses_round_trip_where_they_exist() {
        for s in all() {
            for k in 0..=100 {
                let t = f64::from(k) / 100.0;
                let back = s.t_from_total_noise(s.total_noise(t));
                assert!((back - t).abs() < 1e-9, "{s:?} total noise at {t}: {back}");
                if s.noise_rate_range().is_ok() {
                    let back = s.t_from_noise_rate(s.noise_rate(t));
                    assert!((back - t).abs() < 1e-9, "{s:?} noise rate at {t}: {back}");
                }
            }
        }
    }

    #[test]
    fn cosine_family_sigma_and_weight_keep_their_digits_near_zero() {
        // As t → 0 both schedules have m = 1 − α ≈ (1 − eps)·(πt)²/8 (cosine) or
        // (1 − eps)·(πt)²/4 (cosine-squared), σ = m + m²/2 + ..., and weight ≈ 2/t − O(t).
        let eps = 1e-3;
        for (s, quarter) in [
            (Schedule::new("cosine", eps, 0.0).unwrap(), 8.0),
            (Schedule::new("cosine_squared", eps, 0.0).unwrap(), 4.0),
        ] {
            for t in [1e-12_f64, 1e-9, 1e-7, 1e-5] {
                let m = (1.0 - eps) * (std::f64::consts::PI * t).powi(2) / quarter;
                let sigma = m + m * m / 2.0;
                let relative = (s.total_noise(t) - sigma).abs() / sigma;
                assert!(relative < 1e-9, "{s:?} sigma({t}): {relative:e}");
                let (_, total) = s.rate_and_total_polynomial(t);
                assert!(
                    (total - sigma).abs() / sigma < 1e-9,
                    "{s:?} polynomial at {t}"
                );
                let weight = s.loss_weight(t) * t;
                assert!(
                    (weight - 2.0).abs() < 1e-9,
                    "{s:?} weight({t}) t = {weight}"
                );
            }
            // Away from 0 the cotangent is the published quotient, and σ its −ln α.
            for t in [0.2, 0.5, 0.8, 1.0] {
                let quotient = s.noise_rate(t) / s.total_noise(t).exp_m1();
                assert!((s.loss_weight(t) - quotient).abs() <= 1e-13 * quotient.max(1e-3));
                assert!((s.total_noise(t) + s.alpha(t).ln()).abs() < 1e-14);
            }
            assert_eq!(s.loss_weight(0.0), f64::INFINITY);
            assert_eq!(s.total_noise(0.0).to_bits(), 0.0_f64.to_bits());
        }
    }

    #[test]
    fn one_pass_gives_each_quantity_and_names_the_first_bad_input() {
        let s = Schedule::new("cosine", 1e-3, 0.0).unwrap();
        let t: Vec<f32> = (0..40_000).map(|i| i as f32 / 40_000.0).collect();
        let (mut rate, mut total) = (vec![0f32; t.len()], vec![0f32; t.len()]);
        evaluate(
            &s,
            &[Quantity::NoiseRate, Quantity::TotalNoise],
            &t,
            &mut [&mut rate, &mut total],
        )
        .unwrap();
        assert_eq!(total[20_000], s.total_noise(f64::from(t[20_000])) as f32);
        assert_eq!(rate[39_999], s.noise_rate(f64::from(t[39_999])) as f32);

        let mut bad = t.clone();
        bad[30_000] = 1.5;
        bad[35_000] = f32::NAN;
        let err = evaluate(&s, &[Quantity::TotalNoise], &bad, &mut [&mut total]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t: must be in [0, 1], got 1.5 at index 30000"
        );
    }

    #[test]
    fn bad_parameters_and_inverses_are_named() {
        let err = Schedule::new("cosine", 0.0, 0.0).unwrap_err();
        assert_eq!(err.to_string(), "eps: must be in (0, 1), got 0");
        let err = Schedule::new("geometric", 0.0, 1.0).unwrap_err();
        assert_eq!(err.to_string(), "sigma_min: must be finite and > 0, got 0");
        assert!(Schedule::new("linear", 2.0, 1.0).is_err());
        assert!(Schedule::new("cubic", 0.1, 0.0).is_err());
        let linear = Schedule::new("linear", 0.0, 1.0).unwrap();
        let mut out = [0f64; 1];
        let err = evaluate(
            &linear,
            &[Quantity::TFromNoiseRate],
            &[1.0],
            &mut [&mut out],
        );
        assert!(err.unwrap_err().to_string().contains("constant noise rate"));
    }
}
