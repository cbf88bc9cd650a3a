//! Element types by the names numpy and torch use, parsed once at the boundary.

use crate::error::{Error, Result};

/// An element type an operation may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// IEEE half precision.
    Float16,
    /// bfloat16 (carried as raw u16 bits across the boundary).
    BFloat16,
    /// IEEE single precision.
    Float32,
    /// IEEE double precision.
    Float64,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
}

impl DType {
    /// The canonical name (numpy spelling; `bfloat16` as torch spells it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Float16 => "float16",
            Self::BFloat16 => "bfloat16",
            Self::Float32 => "float32",
            Self::Float64 => "float64",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::Float16 | Self::BFloat16 => 2,
            Self::Float32 | Self::Int32 => 4,
            Self::Float64 | Self::Int64 => 8,
        }
    }

    /// Parse a dtype name for operation `op`, accepting only `supported`.
    ///
    /// # Errors
    /// [`Error::UnsupportedDtype`] naming `op` and listing what it supports.
    pub fn parse_for(name: &str, op: &'static str, supported: &[DType]) -> Result<DType> {
        let canonical = name.strip_prefix("torch.").unwrap_or(name);
        supported
            .iter()
            .copied()
            .find(|d| d.name() == canonical)
            .ok_or_else(|| Error::UnsupportedDtype {
                dtype: name.to_owned(),
                op,
                supported: supported_list(supported),
            })
    }
}

fn supported_list(supported: &[DType]) -> String {
    let names: Vec<&str> = supported.iter().map(|d| d.name()).collect();
    names.join(", ")
}

/// A float element type: read as f64, written back rounded once.
pub trait Real: Copy + Send + Sync + 'static {
    /// Fewer significand bits than f64: results only need f64 accuracy to ~1e-15.
    const NARROW: bool = true;
    /// The exact value as f64.
    fn to_f64(self) -> f64;
    /// The nearest value of this type.
    fn from_f64(value: f64) -> Self;
    /// `dst[i] = src[i].to_f64()` (the same length), for loops that widen a block at a
    /// time.
    #[inline(always)]
    fn widen(src: &[Self], dst: &mut [f64]) {
        for (wide, &value) in dst.iter_mut().zip(src) {
            *wide = value.to_f64();
        }
    }
}

impl Real for f64 {
    const NARROW: bool = false;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }
}

impl Real for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

impl Real for half::f16 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        half::f16::to_f64(self)
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        half::f16::from_f64(value)
    }
    /// Through `half`'s slice conversion, which checks for F16C once per slice and then
    /// converts in vectors; one value at a time it checks per element (exact either way).
    fn widen(src: &[Self], dst: &mut [f64]) {
        use half::slice::HalfFloatSliceExt;
        const STAGE: usize = 256;
        let mut staged = [0.0_f32; STAGE];
        for (narrow, wide) in src.chunks(STAGE).zip(dst.chunks_mut(STAGE)) {
            let staged = &mut staged[..narrow.len()];
            narrow.convert_to_f32_slice(staged);
            for (out, &value) in wide.iter_mut().zip(staged.iter()) {
                *out = f64::from(value);
            }
        }
    }
}

impl Real for half::bf16 {
    /// bf16 is the top half of an f32: widening is a shift (exact, NaN stays NaN), which
    /// vectorises; `half`'s own `to_f64` takes a branchy software path per element.
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(f32::from_bits(u32::from(self.to_bits()) << 16))
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        half::bf16::from_f64(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_and_torch_spellings_and_rejects_the_rest() {
        let floats = [DType::Float32, DType::Float64];
        assert_eq!(
            DType::parse_for("float32", "uniform", &floats),
            Ok(DType::Float32)
        );
        assert_eq!(
            DType::parse_for("torch.float64", "uniform", &floats),
            Ok(DType::Float64)
        );
        let err = DType::parse_for("int8", "uniform", &floats).unwrap_err();
        assert_eq!(
            err.to_string(),
            "uniform does not support dtype int8; supported: float32, float64"
        );
    }

    #[test]
    fn half_floats_widen_exactly_one_by_one_and_in_blocks() {
        let same = |ours: f64, theirs: f64| {
            ours.to_bits() == theirs.to_bits() || (ours.is_nan() && theirs.is_nan())
        };
        let bf16s: Vec<half::bf16> = (0..=u16::MAX).map(half::bf16::from_bits).collect();
        let f16s: Vec<half::f16> = (0..=u16::MAX).map(half::f16::from_bits).collect();
        let (mut wide_bf16, mut wide_f16) = (vec![0.0; bf16s.len()], vec![0.0; f16s.len()]);
        Real::widen(&bf16s, &mut wide_bf16);
        Real::widen(&f16s, &mut wide_f16);
        for (i, (&b, &f)) in bf16s.iter().zip(&f16s).enumerate() {
            assert!(
                same(Real::to_f64(b), half::bf16::to_f64(b)),
                "bf16 bits {i:#x}"
            );
            assert!(
                same(wide_bf16[i], half::bf16::to_f64(b)),
                "bf16 block, bits {i:#x}"
            );
            assert!(
                same(wide_f16[i], half::f16::to_f64(f)),
                "f16 block, bits {i:#x}"
            );
        }
    }
}
