//! Python lists of plain ints read straight into int64 arrays. Tests hand over ids, lengths
//! and labels as lists; numpy's list conversion discovers the dtype in a second pass and
//! reads `True` as 1, so a bool among ints would pass every later dtype check.
//!
//! Each reader returns `None`, having changed nothing, for anything but exact `list`s of
//! exact `int`s that fit int64 (bools, numpy scalars, floats and tuples included): the
//! caller then takes its general numpy path, which accepts arrays and tensors, refuses
//! bools and names what is wrong.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList};

/// `item` as an i64 when it is exactly an `int` (not a bool or a subclass) that fits.
fn plain_int(item: &Bound<'_, PyAny>) -> Option<i64> {
    item.cast_exact::<PyInt>().ok()?.extract::<i64>().ok()
}

/// The items of a flat list of ints, appended to `out`; `None` as soon as one is not a
/// plain int.
fn extend_plain_ints(list: &Bound<'_, PyList>, out: &mut Vec<i64>) -> Option<()> {
    out.reserve(list.len());
    for item in list.iter() {
        out.push(plain_int(&item)?);
    }
    Some(())
}

/// `items` (a list of ints) as a 1-D int64 array.
#[pyfunction]
fn int_list_array<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyList>,
) -> Option<Bound<'py, PyArray1<i64>>> {
    let mut values = Vec::new();
    extend_plain_ints(items, &mut values)?;
    Some(values.into_pyarray(py))
}

/// `rows` (a list of lists of ints) concatenated, with each row's length: the
/// `(flat_ids, lengths)` form of a batch of token sequences.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn flatten_int_lists<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
) -> Option<(Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>)> {
    let mut lengths = Vec::with_capacity(rows.len());
    let mut flat = Vec::new();
    for row in rows.iter() {
        let row = row.cast_exact::<PyList>().ok()?;
        lengths.push(row.len() as i64);
        extend_plain_ints(row, &mut flat)?;
    }
    Some((flat.into_pyarray(py), lengths.into_pyarray(py)))
}

/// `rows` (a list of lists of ints) as a `(len(rows), width)` int64 array, each row written
/// from its left end (or, with `left`, ending at the right end) and the rest set to `fill`.
/// `None` also when a row is longer than `width`.
#[pyfunction]
fn pad_int_lists<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    width: usize,
    fill: i64,
    left: bool,
) -> Option<Bound<'py, PyArray2<i64>>> {
    // The caller has checked that the size fits this machine; this only keeps a bad width
    // from reaching ndarray's overflow panic.
    let bytes = rows.len().checked_mul(width).and_then(|n| n.checked_mul(8));
    if bytes.is_none_or(|bytes| bytes > isize::MAX as usize) {
        return None;
    }
    let mut padded = Array2::from_elem((rows.len(), width), fill);
    for (row, mut out) in rows.iter().zip(padded.rows_mut()) {
        let row = row.cast_exact::<PyList>().ok()?;
        if row.len() > width {
            return None;
        }
        let start = if left { width - row.len() } else { 0 };
        for (item, slot) in row.iter().zip(out.iter_mut().skip(start)) {
            *slot = plain_int(&item)?;
        }
    }
    Some(padded.into_pyarray(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(int_list_array, m)?)?;
    m.add_function(wrap_pyfunction!(flatten_int_lists, m)?)?;
    m.add_function(wrap_pyfunction!(pad_int_lists, m)?)
}
