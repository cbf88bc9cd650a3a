//! Bindings of noise schedules and the masking forward processes: float arrays in (f16/bf16
//! as uint16 bit views), the core run with the GIL released, numpy arrays out.

use ferrofix_core::dtype::DType;
use ferrofix_core::noise_schedule::masking::{self, Protect, TokenId};
use ferrofix_core::noise_schedule::{self as core, Quantity, Real, Schedule};
use ferrofix_core::rng;
use ferrofix_core::{Error, Result};
use half::slice::HalfBitsSliceExt;
use half::{bf16, f16};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{Element, IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::convert::{IntArray, IntSlice, contiguous};
use crate::errors::to_py;

const FLOAT_DTYPES: [DType; 4] = [
    DType::Float64,
    DType::Float32,
    DType::Float16,
    DType::BFloat16,
];

fn shaped<'py, T: Element>(
    py: Python<'py>,
    shape: &[usize],
    data: Vec<T>,
) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map(|a| a.into_pyarray(py))
        .map_err(|e| to_py(Error::invalid("input", e.to_string())))
}

/// Validate a schedule's parameters (raises `ConfigError` naming the bad one).
#[pyfunction]
fn noise_schedule_check(kind: &str, first: f64, second: f64) -> PyResult<()> {
    Schedule::new(kind, first, second).map(drop).map_err(to_py)
}

/// Evaluate `quantities` at every element of `x` in one pass; `x` is C-contiguous and
/// stored as `storage` (itself, or uint16 bits for float16/bfloat16).
fn evaluate_typed<'py, T: Real + Default, S: Element + Copy>(
    py: Python<'py>,
    schedule: &Schedule,
    quantities: &[Quantity],
    x: &Bound<'py, PyAny>,
    view: fn(&[S]) -> &[T],
    store: fn(Vec<T>) -> Vec<S>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let x: PyReadonlyArrayDyn<'py, S> = x.extract()?;
    let shape = x.shape().to_vec();
    let input = view(contiguous(&x, "t")?);
    let outputs = py
        .detach(|| core::evaluate_new(schedule, quantities, input))
        .map_err(to_py)?;
    outputs
        .into_iter()
        .map(|data| shaped(py, &shape, store(data)).map(Bound::into_any))
        .collect()
}

fn identity<T>(data: &[T]) -> &[T] {
    data
}

fn keep<T>(data: Vec<T>) -> Vec<T> {
    data
}

/// `quantities` of the schedule `(kind, first, second)` at each element of `x`, one array
/// each, in `x`'s dtype and shape.
#[pyfunction]
#[pyo3(signature = (kind, first, second, quantities, x, dtype))]
fn noise_schedule_eval<'py>(
    py: Python<'py>,
    kind: &str,
    first: f64,
    second: f64,
    quantities: Vec<String>,
    x: &Bound<'py, PyAny>,
    dtype: &str,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let schedule = Schedule::new(kind, first, second).map_err(to_py)?;
    let quantities = quantities
        .iter()
        .map(|q| Quantity::parse(q))
        .collect::<Result<Vec<_>>>()
        .map_err(to_py)?;
    let dtype = DType::parse_for(dtype, "noise schedules", &FLOAT_DTYPES).map_err(to_py)?;
    match dtype {
        DType::Float64 => evaluate_typed::<f64, f64>(py, &schedule, &quantities, x, identity, keep),
        DType::Float32 => evaluate_typed::<f32, f32>(py, &schedule, &quantities, x, identity, keep),
        DType::Float16 => evaluate_typed::<f16, u16>(
            py,
            &schedule,
            &quantities,
            x,
            |bits| bits.reinterpret_cast(),
            |v| v.into_iter().map(f16::to_bits).collect(),
        ),
        DType::BFloat16 => evaluate_typed::<bf16, u16>(
            py,
            &schedule,
            &quantities,
            x,
            |bits| bits.reinterpret_cast(),
            |v| v.into_iter().map(bf16::to_bits).collect(),
        ),
        DType::Int32 | DType::Int64 => Err(to_py(Error::UnsupportedDtype {
            dtype: dtype.name().into(),
            op: "noise schedules",
            supported: "float64, float32, float16, bfloat16".into(),
        })),
    }
}

/// Which tokens are never replaced, as the core takes it.
fn protect<'a>(
    positions: Option<&'a PyReadonlyArrayDyn<'_, bool>>,
    ids: Option<Vec<i64>>,
) -> PyResult<Protect<'a>> {
    Ok(match (positions, ids) {
        (Some(flags), _) => Protect::Positions(contiguous(flags, "protect")?, flags.shape()),
        (None, Some(ids)) => Protect::Ids(ids),
        (None, None) => Protect::Nothing,
    })
}

type Process<T> =
    fn(&[T], &[usize], (&[f64], &[usize]), i128, u64, Protect<'_>) -> Result<(Vec<T>, Vec<bool>)>;

/// Run one forward process on int32 or int64 ids; returns `(new_ids, replaced)`.
#[allow(clippy::too_many_arguments)]
fn run_process<'py>(
    py: Python<'py>,
    input_ids: &Bound<'py, PyAny>,
    (prob, prob_arg): (PyReadonlyArrayDyn<'py, f64>, &'static str),
    value: i128,
    seed: i128,
    protect_positions: Option<PyReadonlyArrayDyn<'py, bool>>,
    protect_ids: Option<Vec<i64>>,
    (op, process32, process64): (&'static str, Process<i32>, Process<i64>),
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let seed = rng::check_seed(seed).map_err(to_py)?;
    let ids = IntArray::extract(input_ids, op)?;
    let shape = ids.shape();
    let prob_shape = prob.shape().to_vec();
    let prob_data = contiguous(&prob, prob_arg)?;
    let protect = protect(protect_positions.as_ref(), protect_ids)?;
    let data = ids.slice("input_ids")?;
    fn finish<'py, T: TokenId + Element>(
        py: Python<'py>,
        shape: &[usize],
        result: Result<(Vec<T>, Vec<bool>)>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let (ids, replaced) = result.map_err(to_py)?;
        Ok((
            shaped(py, shape, ids)?.into_any(),
            shaped(py, shape, replaced)?.into_any(),
        ))
    }
    let probs = (prob_data, prob_shape.as_slice());
    match data {
        IntSlice::I32(ids) => {
            let result = py.detach(|| process32(ids, &shape, probs, value, seed, protect));
            finish(py, &shape, result)
        }
        IntSlice::I64(ids) => {
            let result = py.detach(|| process64(ids, &shape, probs, value, seed, protect));
            finish(py, &shape, result)
        }
    }
}

/// `(noised_ids, mask)`: each unprotected token becomes `mask_token_id` with probability
/// `mask_prob` (float64: scalar, per row or per token).
#[pyfunction]
#[pyo3(signature = (input_ids, mask_prob, mask_token_id, seed, protect_positions=None, protect_ids=None))]
fn mask_tokens<'py>(
    py: Python<'py>,
    input_ids: &Bound<'py, PyAny>,
    mask_prob: PyReadonlyArrayDyn<'py, f64>,
    mask_token_id: i128,
    seed: i128,
    protect_positions: Option<PyReadonlyArrayDyn<'py, bool>>,
    protect_ids: Option<Vec<i64>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    run_process(
        py,
        input_ids,
        (mask_prob, "mask_prob"),
        mask_token_id,
        seed,
        protect_positions,
        protect_ids,
        (
            "mask_tokens",
            masking::mask_tokens::<i32>,
            masking::mask_tokens::<i64>,
        ),
    )
}

/// `(corrupted_ids, resampled)`: each unprotected token is redrawn uniformly from
/// [0, vocab_size) with probability `corrupt_prob`.
#[pyfunction]
#[pyo3(signature = (input_ids, corrupt_prob, vocab_size, seed, protect_positions=None, protect_ids=None))]
fn uniform_corrupt<'py>(
    py: Python<'py>,
    input_ids: &Bound<'py, PyAny>,
    corrupt_prob: PyReadonlyArrayDyn<'py, f64>,
    vocab_size: i128,
    seed: i128,
    protect_positions: Option<PyReadonlyArrayDyn<'py, bool>>,
    protect_ids: Option<Vec<i64>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    run_process(
        py,
        input_ids,
        (corrupt_prob, "corrupt_prob"),
        vocab_size,
        seed,
        protect_positions,
        protect_ids,
        (
            "uniform_corrupt",
            masking::uniform_corrupt::<i32>,
            masking::uniform_corrupt::<i64>,
        ),
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(noise_schedule_check, m)?)?;
    m.add_function(wrap_pyfunction!(noise_schedule_eval, m)?)?;
    m.add_function(wrap_pyfunction!(mask_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(uniform_corrupt, m)?)
}
