//! The single mapping from core errors to the Python classes in `ferrofix/errors.py`.
//!
//! The match is exhaustive on purpose (no `_ =>`): a new core variant fails to compile until
//! it is given a Python class here.

use ferrofix_core::Error;
use pyo3::prelude::*;

pyo3::import_exception!(ferrofix.errors, ShapeError);
pyo3::import_exception!(ferrofix.errors, ConfigError);
pyo3::import_exception!(ferrofix.errors, DtypeError);
pyo3::import_exception!(ferrofix.errors, CudaUnavailableError);
pyo3::import_exception!(ferrofix.errors, CudaError);
pyo3::import_exception!(ferrofix.errors, UnknownTokenError);

/// Convert a core error into its Python exception.
pub fn to_py(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::ShapeMismatch { .. } => ShapeError::new_err(message),
        Error::InvalidArgument { .. } => ConfigError::new_err(message),
        Error::UnsupportedDtype { .. } => DtypeError::new_err(message),
        Error::UnknownToken { .. } => UnknownTokenError::new_err(message),
        Error::CudaUnavailable { .. } => CudaUnavailableError::new_err(message),
        Error::Cuda { .. } => CudaError::new_err(message),
    }
}

/// One fixed example of each core variant, so tests can check the whole mapping table
/// before every variant has a real operation that produces it.
fn example(variant: &str) -> Option<Error> {
    Some(match variant {
        "ShapeMismatch" => Error::ShapeMismatch {
            arg: "logits",
            expected: "(N, V)".into(),
            got: "(3,)".into(),
        },
        "InvalidArgument" => {
            Error::invalid("reduction", "must be one of mean, sum, none; got 'avg'")
        }
        "UnsupportedDtype" => Error::UnsupportedDtype {
            dtype: "int8".into(),
            op: "uniform",
            supported: "float32, float64".into(),
        },
        "UnknownToken" => Error::UnknownToken { token: "x".into() },
        "CudaUnavailable" => Error::CudaUnavailable {
            reason: "libcuda.so not found".into(),
        },
        "Cuda" => Error::Cuda {
            op: "cross_entropy_fwd".into(),
            message: "out of memory".into(),
        },
        _ => return None,
    })
}

/// Raise the example error of a core variant (test support for the mapping table).
#[pyfunction]
fn _raise_example_error(variant: &str) -> PyResult<()> {
    match example(variant) {
        Some(err) => Err(to_py(err)),
        None => Err(to_py(Error::invalid(
            "variant",
            format!(
                "must be one of ShapeMismatch, InvalidArgument, UnsupportedDtype, \
                 UnknownToken, CudaUnavailable, Cuda; got {variant:?}"
            ),
        ))),
    }
}

/// A `DtypeError` for a Python object of the wrong type: "texts[3]: expected str, got int".
pub fn wrong_type(arg: &str, expected: &str, got: &Bound<'_, PyAny>) -> PyErr {
    let got = got
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into());
    DtypeError::new_err(format!("{arg}: expected {expected}, got {got}"))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_raise_example_error, m)?)
}
