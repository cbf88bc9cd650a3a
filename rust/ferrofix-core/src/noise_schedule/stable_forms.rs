//! Forms of α, 1 − α and σ = −ln α that keep their digits at both ends of t.
//!
//! The plain formulas lose them twice. Near t = 0, α rounds to 1 (exactly 1 below
//! t ≈ 1e-8 for cosine), so σ = −ln α keeps none of σ's digits. Near t = 1, a rounding
//! inside α is large relative to α ≈ eps: cos of the rounded πt/2 is 6e-17 at t = 1, not 0
//! (70 ulp of σ(1) at eps = 1e-3), and log-linear's 1 − a·t carries a·t's rounding
//! (250 ulp of α). Both evaluation paths (libm for f64 outputs, the polynomials for
//! narrower ones) build on these helpers.

/// sin θ, cos θ and 1 − cos θ of θ = πt/2, each to a few ulp of its own value on all of
/// [0, 1].
#[derive(Debug, Clone, Copy)]
pub struct HalfTurn {
    pub sin: f64,
    pub cos: f64,
    pub one_minus_cos: f64,
}

impl HalfTurn {
    /// From one (sin, cos) pair of a quarter angle q in [0, π/8]: q = πt/4 for t ≤ 1/2
    /// (θ = 2q), else q = π(1 − t)/4 with 1 − t exact (θ = π/2 − 2q: sin and cos swap). No
    /// term cancels: cos 2q = 1 − 2sin²q ≥ 0.7 and 1 − sin 2q ≥ 0.29. Selects, no branch:
    /// t is often random, and the polynomial path vectorises.
    #[inline(always)]
    pub fn at(t: f64, sin_cos: impl Fn(f64) -> (f64, f64)) -> Self {
        let upper = t > 0.5;
        let (s, c) = sin_cos(std::f64::consts::FRAC_PI_4 * if upper { 1.0 - t } else { t });
        let sin_2q = 2.0 * s * c;
        let versine_2q = 2.0 * s * s;
        let cos_2q = 1.0 - versine_2q;
        Self {
            sin: if upper { cos_2q } else { sin_2q },
            cos: if upper { sin_2q } else { cos_2q },
            one_minus_cos: if upper { 1.0 - sin_2q } else { versine_2q },
        }
    }
}

/// σ = −ln α given α and m = 1 − α, each computed directly: −ln1p(−m) while m < 1/2, where
/// α ≈ 1 has rounded m's digits away, and −ln α beyond, where m ≈ 1 − eps would lose α's.
/// `log` is libm's `ln` or the polynomial one: one call and no branch either way.
#[inline(always)]
pub fn neg_ln_alpha(alpha: f64, mask: f64, log: impl Fn(f64) -> f64) -> f64 {
    let near_one = mask < 0.5;
    let w = if near_one { 1.0 - mask } else { alpha };
    // Goldberg's ln1p(−m) = ln(w)·(−m/(w − 1)); nothing to correct for ln α.
    let factor = if near_one && w != 1.0 {
        -mask / (w - 1.0)
    } else {
        1.0
    };
    // `+ 0.0` turns σ(0) = −0.0 into +0.0.
    if near_one && w == 1.0 {
        mask + 0.0
    } else {
        -(log(w) * factor) + 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::polynomial::relative;
    use super::*;

    #[test]
    fn half_turn_matches_libm_and_keeps_cos_near_one() {
        for i in 0..=100_000 {
            let t = f64::from(i) / 100_000.0;
            let h = HalfTurn::at(t, f64::sin_cos);
            let theta = std::f64::consts::FRAC_PI_2 * t;
            assert!(relative(h.sin, theta.sin()) < 1e-15, "sin at {t}");
            // Against libm of the rounded θ: within a few ulp of 1 (its own rounding is
            // 6e-17 at t = 1).
            assert!((h.cos - theta.cos()).abs() < 4e-16, "cos at {t}");
            assert!(
                (h.one_minus_cos - (1.0 - theta.cos())).abs() < 4e-16,
                "1 - cos at {t}"
            );
        }
        let at_one = HalfTurn::at(1.0, f64::sin_cos);
        assert_eq!(
            (at_one.sin, at_one.cos, at_one.one_minus_cos),
            (1.0, 0.0, 1.0)
        );
        // cos(π(1 − δ)/2) = sin(πδ/2) and 1 − cos(πδ/2) ≈ (πδ/2)²/2, to full relative accuracy.
        let delta = 2f64.powi(-40);
        let half_pi_delta = std::f64::consts::FRAC_PI_2 * delta;
        assert!(relative(HalfTurn::at(1.0 - delta, f64::sin_cos).cos, half_pi_delta) < 1e-15);
        let near_zero = HalfTurn::at(delta, f64::sin_cos);
        assert!(relative(near_zero.one_minus_cos, half_pi_delta * half_pi_delta / 2.0) < 1e-15);
    }

    #[test]
    fn neg_ln_alpha_is_ln1p_below_one_half_and_ln_above() {
        for i in 1..1000 {
            let mask = f64::from(i) / 1000.0;
            let alpha = 1.0 - mask;
            let got = neg_ln_alpha(alpha, mask, f64::ln);
            let want = if mask < 0.5 {
                -(-mask).ln_1p()
            } else {
                -alpha.ln()
            };
            assert!(relative(got, want) < 4e-16, "{mask}");
        }
        assert_eq!(neg_ln_alpha(1.0, 1e-300, f64::ln), 1e-300);
        assert_eq!(neg_ln_alpha(1.0, 0.0, f64::ln).to_bits(), 0.0_f64.to_bits());
    }
}
