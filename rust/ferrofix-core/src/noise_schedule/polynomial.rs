//! Branch-free f64 elementary functions for the schedules' narrow-dtype path.
//!
//! libm's `sin`, `cos`, `ln` and `powf` are calls the compiler cannot vectorise; these are
//! plain polynomials and bit operations it can, 4 lanes per AVX2 instruction. Each is
//! accurate to a few units in the last place of f64 (relative error < 1e-15 on the domains
//! below), far inside half an ulp of f32, so a result rounded to f32, f16 or bf16 is the
//! libm formula's rounding (or, for values within 1e-15 of a tie, its neighbour). f64
//! outputs keep libm.

/// ln 2 in two parts (fdlibm's): the high part ends in 21 zero bits, so k · LN2_HI is exact
/// for every |k| < 2^21, far beyond any f64 exponent.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const LOG2_E: f64 = std::f64::consts::LOG2_E;

/// Horner evaluation of `c[0] + c[1] z + c[2] z² + ...`.
#[inline(always)]
fn horner<const N: usize>(z: f64, c: [f64; N]) -> f64 {
    // Plain multiply-add: `mul_add` is a libm call on CPUs built without FMA.
    c.iter().rev().fold(0.0, |acc, &k| acc * z + k)
}

/// Taylor coefficients of sin(y)/y and cos(y) in y², enough for |y| <= π/4 (the first
/// omitted term is below 1e-19).
const SIN: [f64; 9] = [
    1.0,
    -1.0 / 6.0,
    1.0 / 120.0,
    -1.0 / 5_040.0,
    1.0 / 362_880.0,
    -1.0 / 39_916_800.0,
    1.0 / 6_227_020_800.0,
    -1.0 / 1_307_674_368_000.0,
    1.0 / 355_687_428_096_000.0,
];
const COS: [f64; 10] = [
    1.0,
    -1.0 / 2.0,
    1.0 / 24.0,
    -1.0 / 720.0,
    1.0 / 40_320.0,
    -1.0 / 3_628_800.0,
    1.0 / 479_001_600.0,
    -1.0 / 87_178_291_200.0,
    1.0 / 20_922_789_888_000.0,
    -1.0 / 6_402_373_705_728_000.0,
];

/// 1/n! for n = 0..13, each from the exact factorial (13! < 2^53) and one division.
const EXP: [f64; 14] = {
    let (mut c, mut factorial, mut n) = ([1.0; 14], 1.0, 1);
    while n < 14 {
        factorial *= n as f64;
        c[n] = 1.0 / factorial;
        n += 1;
    }
    c
};

/// (sin y, cos y) for y in [0, π/8], the quarter angles of `cosine::HalfTurn`.
#[inline(always)]
pub fn sin_cos_eighth_turn(y: f64) -> (f64, f64) {
    let z = y * y;
    (y * horner(z, SIN), horner(z, COS))
}

/// ln x for finite x > 0 (subnormals included).
#[inline(always)]
pub fn ln(x: f64) -> f64 {
    // Subnormals are scaled into the normal range first.
    let tiny = x < f64::MIN_POSITIVE;
    let x = if tiny {
        x * 18_446_744_073_709_551_616.0
    } else {
        x
    };
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) as i64 - 1023) as f64 - if tiny { 64.0 } else { 0.0 };
    // m in [1, 2), then halved above sqrt(2) so that |s| <= 0.1716 below.
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let big = m > std::f64::consts::SQRT_2;
    m = if big { m * 0.5 } else { m };
    exponent += if big { 1.0 } else { 0.0 };
    // ln m = 2 atanh(s), s = (m − 1)/(m + 1): 2s·(1 + s²/3 + s⁴/5 + ...).
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let series = horner(
        z,
        [
            1.0 / 3.0,
            1.0 / 5.0,
            1.0 / 7.0,
            1.0 / 9.0,
            1.0 / 11.0,
            1.0 / 13.0,
            1.0 / 15.0,
            1.0 / 17.0,
            1.0 / 19.0,
            1.0 / 21.0,
            1.0 / 23.0,
        ],
    );
    let ln_m = 2.0 * s + 2.0 * s * z * series;
    // exponent · LN2_HI is exact (see LN2_HI).
    exponent * LN2_HI + (ln_m + exponent * LN2_LO)
}

/// e^y for y in the range of ln of positive finite f64 (about [−745, 710]).
#[inline(always)]
pub fn exp(y: f64) -> f64 {
    let k = (y * LOG2_E).round();
    // k · LN2_HI is exact, and so is y − k · LN2_HI (Cody and Waite).
    let r = (y - k * LN2_HI) - k * LN2_LO;
    // Taylor to r^13 / 13! for |r| <= ln(2)/2 (the first omitted term is below 1e-17).
    let p = horner(r, EXP);
    // 2^k in two halves, so subnormal and near-overflow results scale without overflow.
    let half = (k * 0.5).floor();
    let scale = |n: f64| f64::from_bits(((n as i64 + 1023) as u64) << 52);
    p * scale(half) * scale(k - half)
}

/// Relative difference of `a` from `b` (0 when equal): the tests' measure of digits kept.
#[cfg(test)]
pub(super) fn relative(a: f64, b: f64) -> f64 {
    if a == b { 0.0 } else { ((a - b) / b).abs() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_constants_add_up() {
        assert_eq!(LN2_HI + LN2_LO, std::f64::consts::LN_2);
        assert!(LN2_HI.to_bits().trailing_zeros() >= 21);
    }

    #[test]
    fn sin_cos_match_libm_on_an_eighth_turn() {
        for i in 0..=100_000 {
            let y = std::f64::consts::FRAC_PI_8 * f64::from(i) / 100_000.0;
            let (s, c) = sin_cos_eighth_turn(y);
            assert!(relative(s, y.sin()) < 1e-15, "sin {y}: {s} vs {}", y.sin());
            assert!(relative(c, y.cos()) < 1e-15, "cos {y}: {c} vs {}", y.cos());
        }
        assert_eq!(sin_cos_eighth_turn(0.0), (0.0, 1.0));
    }

    #[test]
    fn ln_and_its_ln_1p_match_libm() {
        let mut x = 1e-320_f64; // subnormal, large enough that x · 1.37 moves
        while x < 1e300 {
            assert!(
                relative(ln(x), x.ln()) < 1e-15 || (ln(x) - x.ln()).abs() < 1e-15,
                "{x}"
            );
            x *= 1.37;
        }
        assert_eq!(ln(1.0), 0.0);
        // σ = −ln1p(−m) through Goldberg's correction of this ln, as the narrow path takes it.
        let neg_ln_alpha = super::super::stable_forms::neg_ln_alpha;
        for i in 0..100_000 {
            let m = 0.5 * f64::from(i) / 100_000.0;
            let sigma = neg_ln_alpha(1.0 - m, m, ln);
            assert!(relative(sigma, -(-m).ln_1p()) < 1e-15, "ln_1p {m}");
        }
        assert_eq!(neg_ln_alpha(1.0, 1e-300, ln), 1e-300);
    }

    #[test]
    fn exp_matches_libm_from_subnormal_to_near_overflow() {
        let mut y = -744.0_f64;
        while y < 709.0 {
            let (got, want) = (exp(y), y.exp());
            // Subnormal results carry fewer bits: compare them absolutely.
            assert!(
                relative(got, want) < 1e-15 || (got - want).abs() < 1e-320,
                "{y}"
            );
            y += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
    }
}
