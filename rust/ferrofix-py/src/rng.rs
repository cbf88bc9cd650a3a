//! Bindings of the counter-based generator: numpy arrays out, GIL released while filling.

use ferrofix_core::dtype::DType;
use ferrofix_core::memory::{ZeroBits, allocation_refused, check_outputs_fit, try_zeroed_vec};
use ferrofix_core::rng::{self as core, CounterRng};
use ferrofix_core::{Error, Result};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{Element, IntoPyArray, PyArrayDyn};
use pyo3::prelude::*;

use crate::errors::to_py;

/// Validate (seed, stream, offset) and build the generator view.
fn generator(seed: i128, stream: i128, offset: i128) -> Result<(CounterRng, u64)> {
    let rng = CounterRng::new(core::check_seed(seed)?, core::check_stream(stream)?);
    Ok((rng, core::check_offset(offset)?))
}

/// Allocate `shape`, fill it with the GIL released, and hand it to numpy without a copy.
/// A shape larger than the machine's memory is an error naming `shape`, not an abort.
fn filled<'py, T: Element + ZeroBits + Send>(
    py: Python<'py>,
    shape: &[i64],
    fill: impl FnOnce(&mut [T]) -> Result<()> + Send,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let n = core::element_count(shape).map_err(to_py)?;
    // element_count accepted the shape, so every dim is a non-negative usize.
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    check_outputs_fit("shape", 1, &dims, size_of::<T>(), "ask for fewer elements")
        .map_err(to_py)?;
    let data = py
        .detach(|| {
            // Zeroed memory comes straight from the kernel untouched, advised for huge
            // pages, so the fill faults it in 2 MiB at a time instead of 4 KiB.
            let mut out = try_zeroed_vec::<T>(n).ok_or_else(|| {
                let what = format!("an array of shape {dims:?}");
                allocation_refused("shape", what, "ask for fewer elements")
            })?;
            fill(&mut out).map(|()| out)
        })
        .map_err(to_py)?;
    let array = ArrayD::from_shape_vec(IxDyn(&dims), data).map_err(|e| {
        to_py(Error::ShapeMismatch {
            arg: "shape",
            expected: format!("{dims:?}"),
            got: e.to_string(),
        })
    })?;
    Ok(array.into_pyarray(py))
}

/// Uniform floats in [0, 1): element i of the result is element `offset + i` of the stream.
#[pyfunction]
#[pyo3(signature = (shape, seed, stream, offset, dtype))]
fn uniform<'py>(
    py: Python<'py>,
    shape: Vec<i64>,
    seed: i128,
    stream: i128,
    offset: i128,
    dtype: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let dtype =
        DType::parse_for(dtype, "uniform", &[DType::Float32, DType::Float64]).map_err(to_py)?;
    let (rng, offset) = generator(seed, stream, offset).map_err(to_py)?;
    Ok(if dtype == DType::Float32 {
        filled(py, &shape, |out| core::fill_uniform_f32(out, rng, offset))?.into_any()
    } else {
        filled(py, &shape, |out| core::fill_uniform_f64(out, rng, offset))?.into_any()
    })
}

/// Integers uniform in [low, high) as int64.
#[pyfunction]
#[pyo3(signature = (low, high, shape, seed, stream, offset))]
fn integers<'py>(
    py: Python<'py>,
    low: i64,
    high: i64,
    shape: Vec<i64>,
    seed: i128,
    stream: i128,
    offset: i128,
) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
    let (rng, offset) = generator(seed, stream, offset).map_err(to_py)?;
    filled(py, &shape, |out| {
        core::fill_integers(out, low, high, rng, offset)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(uniform, m)?)?;
    m.add_function(wrap_pyfunction!(integers, m)?)
}
