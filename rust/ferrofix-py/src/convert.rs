//! Borrowing numpy arrays for the core: integer arrays of either width, and contiguous data.

use ferrofix_core::Error;
use numpy::ndarray::Dimension;
use numpy::{
    Element, PyReadonlyArray, PyReadonlyArrayDyn, PyReadwriteArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::errors::to_py;

/// An int32 or int64 numpy array (labels, lengths), borrowed read-only.
pub enum IntArray<'py> {
    I32(PyReadonlyArrayDyn<'py, i32>),
    I64(PyReadonlyArrayDyn<'py, i64>),
}

/// An [`IntArray`]'s data, free of Python objects so it can cross into `py.detach`.
#[derive(Clone, Copy)]
pub enum IntSlice<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl<'py> IntArray<'py> {
    /// Borrow `array`; any other dtype is a `DtypeError` naming `op`.
    pub fn extract(array: &Bound<'py, PyAny>, op: &'static str) -> PyResult<Self> {
        if let Ok(array) = array.extract::<PyReadonlyArrayDyn<'py, i64>>() {
            return Ok(Self::I64(array));
        }
        if let Ok(array) = array.extract::<PyReadonlyArrayDyn<'py, i32>>() {
            return Ok(Self::I32(array));
        }
        let dtype = array
            .getattr("dtype")
            .and_then(|d| d.str().map(|s| s.to_string()))
            .unwrap_or_else(|_| "unknown".into());
        Err(to_py(Error::UnsupportedDtype {
            dtype,
            op,
            supported: "int32, int64".into(),
        }))
    }

    /// The data; a non-contiguous array is a `ConfigError` naming `arg`.
    pub fn slice(&self, arg: &'static str) -> PyResult<IntSlice<'_>> {
        Ok(match self {
            Self::I32(a) => IntSlice::I32(contiguous(a, arg)?),
            Self::I64(a) => IntSlice::I64(contiguous(a, arg)?),
        })
    }

    pub fn shape(&self) -> Vec<usize> {
        match self {
            Self::I32(a) => a.shape().to_vec(),
            Self::I64(a) => a.shape().to_vec(),
        }
    }
}

/// The array's data as one slice; an array not in C order or not aligned to its element
/// size is a `ConfigError` naming `arg` (the Python layer copies both kinds first).
pub fn contiguous<'a, T: Element, D: Dimension>(
    array: &'a PyReadonlyArray<'_, T, D>,
    arg: &'static str,
) -> PyResult<&'a [T]> {
    // `as_slice` also takes Fortran order, whose slice holds a 2-D array transposed.
    if !array.is_c_contiguous() {
        return Err(to_py(Error::invalid(arg, "must be C-contiguous")));
    }
    array
        .as_slice()
        .map_err(|_| to_py(Error::invalid(arg, "must be aligned to its element size")))
}

/// A writable array's data as one slice, under the same rules as [`contiguous`].
pub fn writable_slice<'a, T: Element, D: Dimension>(
    array: &'a mut PyReadwriteArray<'_, T, D>,
    arg: &'static str,
) -> PyResult<&'a mut [T]> {
    if !array.is_c_contiguous() {
        return Err(to_py(Error::invalid(arg, "must be C-contiguous")));
    }
    array
        .as_slice_mut()
        .map_err(|_| to_py(Error::invalid(arg, "must be aligned to its element size")))
}
