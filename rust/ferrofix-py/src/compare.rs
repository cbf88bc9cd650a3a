//! Bindings of tensor comparison: two float arrays in (float16/bfloat16 as uint16 bit views,
//! any pair of dtypes), the statistics pass run with the GIL released, a tuple out.

use ferrofix_core::compare::{self as core, Stats};
use ferrofix_core::dtype::DType;
use ferrofix_core::{Error, Result};
use half::slice::HalfBitsSliceExt;
use half::{bf16, f16};
use numpy::PyReadonlyArrayDyn;
use pyo3::prelude::*;

use crate::convert::contiguous;
use crate::errors::to_py;

const FLOAT_DTYPES: [DType; 4] = [
    DType::Float64,
    DType::Float32,
    DType::Float16,
    DType::BFloat16,
];

/// A borrowed float array of one of the four dtypes.
enum FloatArray<'py> {
    F64(PyReadonlyArrayDyn<'py, f64>),
    F32(PyReadonlyArrayDyn<'py, f32>),
    /// float16 or bfloat16 bits.
    Bits(PyReadonlyArrayDyn<'py, u16>, DType),
}

/// The data of a [`FloatArray`], free of Python objects.
#[derive(Clone, Copy)]
enum Floats<'a> {
    F64(&'a [f64]),
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
}

impl<'py> FloatArray<'py> {
    fn extract(array: &Bound<'py, PyAny>, dtype: &str) -> PyResult<Self> {
        let dtype = DType::parse_for(dtype, "compare_tensors", &FLOAT_DTYPES).map_err(to_py)?;
        Ok(match dtype {
            DType::Float64 => Self::F64(array.extract()?),
            DType::Float32 => Self::F32(array.extract()?),
            _ => Self::Bits(array.extract()?, dtype),
        })
    }

    fn floats(&self, arg: &'static str) -> PyResult<Floats<'_>> {
        Ok(match self {
            Self::F64(a) => Floats::F64(contiguous(a, arg)?),
            Self::F32(a) => Floats::F32(contiguous(a, arg)?),
            Self::Bits(a, DType::Float16) => Floats::F16(contiguous(a, arg)?.reinterpret_cast()),
            Self::Bits(a, _) => Floats::BF16(contiguous(a, arg)?.reinterpret_cast()),
        })
    }
}

fn compare_floats(actual: Floats<'_>, expected: Floats<'_>) -> Result<Stats> {
    macro_rules! with_expected {
        ($a:expr) => {
            match expected {
                Floats::F64(e) => core::compare($a, e),
                Floats::F32(e) => core::compare($a, e),
                Floats::F16(e) => core::compare($a, e),
                Floats::BF16(e) => core::compare($a, e),
            }
        };
    }
    match actual {
        Floats::F64(a) => with_expected!(a),
        Floats::F32(a) => with_expected!(a),
        Floats::F16(a) => with_expected!(a),
        Floats::BF16(a) => with_expected!(a),
    }
}

/// (numel, RMS of d, scale √(mean(expected²) + rms_eps²), max|d|, its flat index,
/// non-finite, non-finite mismatches) of two C-contiguous float arrays of any two of
/// float64/32/16 and bfloat16 (uint16 bits), over the finite positions, at any magnitude.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn compare_arrays(
    py: Python<'_>,
    actual: &Bound<'_, PyAny>,
    actual_dtype: &str,
    expected: &Bound<'_, PyAny>,
    expected_dtype: &str,
    rms_eps: f64,
) -> PyResult<(u64, f64, f64, f64, u64, u64, u64)> {
    let actual = FloatArray::extract(actual, actual_dtype)?;
    let expected = FloatArray::extract(expected, expected_dtype)?;
    let (a, e) = (actual.floats("actual")?, expected.floats("expected")?);
    let stats = py
        .detach(|| compare_floats(a, e))
        .map_err(|err: Error| to_py(err))?;
    Ok((
        stats.numel,
        stats.rms_diff(),
        stats.scale(rms_eps),
        stats.max_abs_diff,
        stats.max_index,
        stats.non_finite,
        stats.non_finite_mismatch,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compare_arrays, m)?)
}
