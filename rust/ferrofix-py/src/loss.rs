//! Bindings of the causal-LM loss: numpy buffers in (f16/bf16 as uint16 bit views), the core
//! run with the GIL released, losses and per-row arrays out.

use ferrofix_core::dtype::DType;
use ferrofix_core::loss::cpu::{self, Gradient, Logit};
use ferrofix_core::loss::{LossOptions, LossOutput, Problem, Reduction};
use ferrofix_core::{Error, Result};
use half::slice::HalfBitsSliceExt;
use half::{bf16, f16};
use numpy::{Element, IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::convert::{IntArray, IntSlice, contiguous, writable_slice};
use crate::errors::to_py;

const OP: &str = "causal_lm_loss";
const LOGIT_DTYPES: [DType; 4] = [
    DType::Float32,
    DType::BFloat16,
    DType::Float16,
    DType::Float64,
];

/// How a logits dtype is stored in numpy: itself, or its bits as uint16.
trait Stored: Logit {
    type Storage: Element + Send + Sync;
    fn view(data: &[Self::Storage]) -> &[Self];
    fn view_mut(data: &mut [Self::Storage]) -> &mut [Self];
}

macro_rules! stored_as_itself {
    ($($t:ty),*) => {$(
        impl Stored for $t {
            type Storage = $t;
            fn view(data: &[$t]) -> &[$t] { data }
            fn view_mut(data: &mut [$t]) -> &mut [$t] { data }
        }
    )*};
}
stored_as_itself!(f32, f64);

macro_rules! stored_as_bits {
    ($($t:ty),*) => {$(
        impl Stored for $t {
            type Storage = u16;
            fn view(data: &[u16]) -> &[$t] { data.reinterpret_cast() }
            fn view_mut(data: &mut [u16]) -> &mut [$t] { data.reinterpret_cast_mut() }
        }
    )*};
}
stored_as_bits!(f16, bf16);

fn as_array<'py, T: Stored>(
    array: &Bound<'py, PyAny>,
    arg: &'static str,
) -> PyResult<Bound<'py, PyArrayDyn<T::Storage>>> {
    array
        .cast::<PyArrayDyn<T::Storage>>()
        .cloned()
        .map_err(|_| {
            to_py(Error::invalid(
                arg,
                "must be a numpy array of the logits' dtype",
            ))
        })
}

/// Run the core for one logits type; `grad` is the output buffer, or None with `in_place`
/// meaning "write over `logits`", or None without it meaning "no gradient".
fn run_typed<T: Stored>(
    py: Python<'_>,
    logits: &Bound<'_, PyAny>,
    labels: &IntArray<'_>,
    grad: Option<&Bound<'_, PyAny>>,
    in_place: bool,
    shift: bool,
    options: &LossOptions,
) -> PyResult<LossOutput> {
    let logits = as_array::<T>(logits, "logits")?;
    let problem = Problem::new(logits.shape(), &labels.shape(), shift).map_err(to_py)?;
    let label_data = labels.slice("labels")?;
    let compute = |io: Gradient<'_, T>| -> Result<LossOutput> {
        match label_data {
            IntSlice::I32(l) => cpu::causal_lm_loss(io, l, &problem, options),
            IntSlice::I64(l) => cpu::causal_lm_loss(io, l, &problem, options),
        }
    };
    let result = if in_place {
        let mut writable = logits.try_readwrite().map_err(|_| {
            to_py(Error::invalid(
                "logits",
                "must be writable for an in-place gradient",
            ))
        })?;
        let data = writable_slice(&mut writable, "logits")?;
        let data = T::view_mut(data);
        py.detach(|| compute(Gradient::InPlace(data)))
    } else {
        let readonly = logits.readonly();
        let data = T::view(contiguous(&readonly, "logits")?);
        match grad {
            None => py.detach(|| compute(Gradient::None(data))),
            Some(grad) => {
                let grad = as_array::<T>(grad, "grad")?;
                let mut writable = grad
                    .try_readwrite()
                    .map_err(|_| to_py(Error::invalid("grad", "must be a writable array")))?;
                let out = writable_slice(&mut writable, "grad")?;
                let out = T::view_mut(out);
                py.detach(|| compute(Gradient::Into(data, out)))
            }
        }
    };
    result.map_err(to_py)
}

/// `(loss, per_row or None, lse or None, valid_rows)` as Python receives it.
type LossResult<'py> = (
    f64,
    Option<Bound<'py, PyAny>>,
    Option<Bound<'py, PyArray1<f32>>>,
    usize,
);

/// Loss (and gradient) of `logits` against `labels`; returns
/// `(loss, per_row or None, lse or None, valid_rows)`.
#[pyfunction]
#[pyo3(signature = (
    logits, dtype, labels, *, shift, ignore_index, reduction, z_loss_scale, softcap,
    label_smoothing, num_items_in_batch, grad=None, in_place=false, return_lse=false
))]
#[allow(clippy::too_many_arguments)]
fn causal_lm_loss<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    dtype: &str,
    labels: &Bound<'py, PyAny>,
    shift: bool,
    ignore_index: i64,
    reduction: &str,
    z_loss_scale: f64,
    softcap: Option<f64>,
    label_smoothing: f64,
    num_items_in_batch: Option<f64>,
    grad: Option<&Bound<'py, PyAny>>,
    in_place: bool,
    return_lse: bool,
) -> PyResult<LossResult<'py>> {
    let dtype = DType::parse_for(dtype, OP, &LOGIT_DTYPES).map_err(to_py)?;
    let options = loss_options(
        ignore_index,
        reduction,
        z_loss_scale,
        softcap,
        label_smoothing,
        num_items_in_batch,
    )?;
    let labels = IntArray::extract(labels, "causal_lm_loss labels")?;
    macro_rules! run {
        ($t:ty) => {
            run_typed::<$t>(py, logits, &labels, grad, in_place, shift, &options)
        };
    }
    let out = match dtype {
        DType::Float32 => run!(f32),
        DType::Float64 => run!(f64),
        DType::Float16 => run!(f16),
        DType::BFloat16 => run!(bf16),
        DType::Int32 | DType::Int64 => unreachable_dtype(dtype),
    }?;
    let per_row = (options.reduction == Reduction::None).then(|| {
        if dtype == DType::Float64 {
            out.per_row.into_pyarray(py).into_any()
        } else {
            let narrowed: Vec<f32> = out.per_row.iter().map(|&v| v as f32).collect();
            narrowed.into_pyarray(py).into_any()
        }
    });
    let lse = return_lse.then(|| out.lse.into_pyarray(py));
    Ok((out.loss, per_row, lse, out.valid_rows))
}

/// The options of a loss call as the core takes them (shared with the CUDA binding).
pub(crate) fn loss_options(
    ignore_index: i64,
    reduction: &str,
    z_loss_scale: f64,
    softcap: Option<f64>,
    label_smoothing: f64,
    num_items_in_batch: Option<f64>,
) -> PyResult<LossOptions> {
    Ok(LossOptions {
        ignore_index,
        reduction: Reduction::parse(reduction).map_err(to_py)?,
        z_loss_scale,
        softcap,
        label_smoothing,
        num_items_in_batch,
    })
}

/// `parse_for` only accepts float dtypes here; this keeps the match exhaustive without a panic.
fn unreachable_dtype(dtype: DType) -> PyResult<LossOutput> {
    Err(to_py(Error::UnsupportedDtype {
        dtype: dtype.name().into(),
        op: OP,
        supported: "float32, bfloat16, float16, float64".into(),
    }))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(causal_lm_loss, m)?)
}
