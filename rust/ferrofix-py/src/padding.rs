//! Padding collators' lists of ids into one int64 array, the conversion behind
//! `Tokenizer.pad`. Data collators hand over a few short Python lists per batch; numpy's
//! nested-list conversion plus a dtype check cost more than the rest of `pad` together.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList};

/// `rows` (a list of lists of ints) as a `(len(rows), width)` int64 array, each row written
/// from its left end (or, with `left`, ending at the right end) and the rest set to `fill`.
///
/// Returns `None`, having changed nothing, when a row is not exactly a `list`, is longer
/// than `width`, or holds anything but plain `int`s that fit int64 (bools included): the
/// caller then takes its general path, which accepts arrays and tensors and names the
/// offending row in its error.
#[pyfunction]
fn pad_int_lists<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    width: usize,
    fill: i64,
    left: bool,
) -> PyResult<Option<Bound<'py, PyArray2<i64>>>> {
    // The caller has checked that the size fits this machine; this only keeps a bad width
    // from reaching ndarray's overflow panic.
    let bytes = rows.len().checked_mul(width).and_then(|n| n.checked_mul(8));
    if bytes.is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Ok(None);
    }
    let mut padded = Array2::from_elem((rows.len(), width), fill);
    for (row, mut out) in rows.iter().zip(padded.rows_mut()) {
        let Ok(row) = row.cast_exact::<PyList>() else {
            return Ok(None);
        };
        if row.len() > width {
            return Ok(None);
        }
        let start = if left { width - row.len() } else { 0 };
        for (item, slot) in row.iter().zip(out.iter_mut().skip(start)) {
            let Ok(int) = item.cast_exact::<PyInt>() else {
                return Ok(None);
            };
            let Ok(value) = int.extract::<i64>() else {
                return Ok(None);
            };
            *slot = value;
        }
    }
    Ok(Some(padded.into_pyarray(py)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pad_int_lists, m)?)
}
