//! Bindings of packing: integer arrays in (int32 or int64), the core run with the GIL
//! released, numpy arrays out without copies.

use ferrofix_core::packing::batch::{Filler, GRID_NAMES, LabelConvention, PackedLayout};
use ferrofix_core::packing::check::{self, BatchView, Expectations, Sources};
use ferrofix_core::packing::{self as core, Overflow, Strategy, bounds};
use ferrofix_core::{Error, Result};
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::buffer_pool::{PACKED_BATCHES, pooled_array};
use crate::convert::{IntArray, IntSlice, contiguous};
use crate::errors::to_py;
use ferrofix_core::memory::check_outputs_fit;

/// The core's items from int32 or int64 lengths.
fn items(lengths: IntSlice<'_>, capacity: u32, overflow: Overflow) -> Result<core::Items> {
    match lengths {
        IntSlice::I32(a) => core::items(a, capacity, overflow),
        IntSlice::I64(a) => core::items(a, capacity, overflow),
    }
}

fn vec1<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>) -> Bound<'py, PyArray1<T>> {
    v.into_pyarray(py)
}

fn grid<'py, T: numpy::Element>(
    py: Python<'py>,
    data: Vec<T>,
    rows: usize,
    columns: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    Array2::from_shape_vec((rows, columns), data)
        .map(|a| a.into_pyarray(py))
        .map_err(|e| to_py(Error::invalid("batch", e.to_string())))
}

/// Pack lengths: a dict of arrays (item order, CSR) plus the item table under `split`.
#[pyfunction]
#[pyo3(signature = (lengths, capacity, strategy, overflow))]
fn pack<'py>(
    py: Python<'py>,
    lengths: &Bound<'py, PyAny>,
    capacity: i64,
    strategy: &str,
    overflow: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let capacity = core::check_capacity(capacity).map_err(to_py)?;
    let strategy = Strategy::parse(strategy).map_err(to_py)?;
    let overflow = Overflow::parse(overflow).map_err(to_py)?;
    let lengths = IntArray::extract(lengths, "lengths")?;
    if lengths.shape().len() != 1 {
        return Err(to_py(Error::ShapeMismatch {
            arg: "lengths",
            expected: "(N,)".into(),
            got: format!("{:?}", lengths.shape()),
        }));
    }
    let lengths = lengths.slice("lengths")?;
    let (items, packing) = py
        .detach(|| {
            let items = items(lengths, capacity, overflow)?;
            let packing = core::pack(&items.lengths, capacity, strategy)?;
            Ok::<_, Error>((items, packing))
        })
        .map_err(to_py)?;
    let out = PyDict::new(py);
    out.set_item("bin_of_item", vec1(py, packing.bin_of_item))?;
    out.set_item("offset_in_bin", vec1(py, packing.offset_in_bin))?;
    out.set_item("bin_offsets", vec1(py, packing.bin_offsets))?;
    out.set_item("items", vec1(py, packing.items))?;
    let item_lengths: Vec<i32> = items.lengths.iter().map(|&v| v as i32).collect();
    out.set_item("item_lengths", vec1(py, item_lengths))?;
    if let Some((source, offset)) = items.sources {
        out.set_item("item_source", vec1(py, source))?;
        out.set_item("item_offset", vec1(py, offset))?;
    }
    Ok(out)
}

/// (L1, L2) lower bounds for item lengths in [1, capacity].
#[pyfunction]
fn lower_bounds(
    py: Python<'_>,
    lengths: PyReadonlyArray1<'_, i32>,
    capacity: i64,
) -> PyResult<(u64, u64)> {
    let capacity = core::check_capacity(capacity).map_err(to_py)?;
    let lengths = contiguous(&lengths, "lengths")?;
    let lengths: Vec<u32> = lengths.iter().map(|&v| v.max(0) as u32).collect();
    py.detach(|| bounds::lower_bounds(&lengths, capacity))
        .map_err(to_py)
}

/// Pack documents (concatenated tokens + lengths) into a batch dict of numpy arrays.
#[pyfunction]
#[pyo3(signature = (tokens, lengths, capacity, strategy, overflow, pad_token_id, ignore_index, labels))]
#[allow(clippy::too_many_arguments)]
fn pack_sequences<'py>(
    py: Python<'py>,
    tokens: PyReadonlyArray1<'py, i64>,
    lengths: PyReadonlyArray1<'py, i64>,
    capacity: i64,
    strategy: &str,
    overflow: &str,
    pad_token_id: i64,
    ignore_index: i64,
    labels: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let capacity = core::check_capacity(capacity).map_err(to_py)?;
    let strategy = Strategy::parse(strategy).map_err(to_py)?;
    let overflow = Overflow::parse(overflow).map_err(to_py)?;
    let filler = Filler {
        pad_token_id,
        ignore_index,
        labels: LabelConvention::parse(labels).map_err(to_py)?,
    };
    let tokens = contiguous(&tokens, "sequences")?;
    let lengths = contiguous(&lengths, "lengths")?;
    let layout = py
        .detach(|| PackedLayout::new(tokens, lengths, capacity, strategy, overflow, filler))
        .map_err(to_py)?;
    // The five grids come from the packed-batch pool: a loop that drops (or replaces) each
    // batch before packing the next reuses their memory instead of faulting in fresh pages.
    let shape = [layout.rows(), layout.capacity()];
    check_outputs_fit(
        "capacity",
        GRID_NAMES.len(),
        &shape,
        size_of::<i64>(),
        "lower capacity (each row is capacity tokens wide)",
    )
    .map_err(to_py)?;
    let grids: Vec<Bound<'py, PyArrayDyn<i64>>> = GRID_NAMES
        .iter()
        .map(|_| pooled_array(py, &shape, &PACKED_BATCHES))
        .collect::<PyResult<_>>()?;
    let tables = {
        let mut slices = Vec::with_capacity(grids.len());
        for grid in &grids {
            // SAFETY: the five arrays were created above, are C-contiguous and distinct, and
            // nothing else refers to them until they are returned, so these are the only
            // views.
            let slice = unsafe { grid.as_slice_mut() };
            slices.push(slice.map_err(|e| to_py(Error::invalid("batch", e.to_string())))?);
        }
        let slices: [&mut [i64]; 5] = slices
            .try_into()
            .map_err(|_| to_py(Error::invalid("batch", "expected five grids")))?;
        py.detach(|| layout.fill(slices).map(|()| layout.segment_tables()))
            .map_err(to_py)?
    };
    let out = PyDict::new(py);
    for (name, grid) in GRID_NAMES.iter().zip(grids) {
        out.set_item(name, grid)?;
    }
    out.set_item("cu_seqlens", vec1(py, tables.cu_seqlens))?;
    out.set_item("max_seqlen", tables.max_seqlen)?;
    out.set_item(
        "document_starts",
        grid(
            py,
            tables.document_starts,
            layout.rows(),
            tables.max_segments,
        )?,
    )?;
    out.set_item("seq_lengths", vec1(py, tables.seq_lengths))?;
    Ok(out)
}

type Grid<'py> = Option<PyReadonlyArray2<'py, i64>>;

/// A violation as Python receives it: (kind, row, position, detail).
type ViolationTuple = (&'static str, i64, i64, String);

fn grid_of<'a>(arg: &'static str, array: &'a Grid<'_>) -> PyResult<Option<&'a [i64]>> {
    array.as_ref().map(|a| contiguous(a, arg)).transpose()
}

/// Check a packed batch: (violations as (kind, row, position, detail), total count).
/// `cu_seqlens` and `max_seqlen` are (key, value) pairs, one per name the batch uses.
#[pyfunction]
#[pyo3(signature = (input_ids, document_ids, labels, position_ids, attention_mask, cu_seqlens,
    max_seqlen, seq_idx, document_starts, seq_lengths, source_tokens, source_lengths, capacity,
    pad_token_id, ignore_index, convention))]
#[allow(clippy::too_many_arguments)]
fn check_packing<'py>(
    py: Python<'py>,
    input_ids: PyReadonlyArray2<'py, i64>,
    document_ids: PyReadonlyArray2<'py, i64>,
    labels: Grid<'py>,
    position_ids: Grid<'py>,
    attention_mask: Grid<'py>,
    cu_seqlens: Vec<(String, PyReadonlyArray1<'py, i64>)>,
    max_seqlen: Vec<(String, i64)>,
    seq_idx: Grid<'py>,
    document_starts: Grid<'py>,
    seq_lengths: Option<PyReadonlyArray1<'py, i64>>,
    source_tokens: Option<PyReadonlyArray1<'py, i64>>,
    source_lengths: Option<PyReadonlyArray1<'py, i64>>,
    capacity: Option<i64>,
    pad_token_id: i64,
    ignore_index: i64,
    convention: &str,
) -> PyResult<(Vec<ViolationTuple>, u64)> {
    let capacity = capacity
        .map(core::check_capacity)
        .transpose()
        .map_err(to_py)?;
    let labels_convention = LabelConvention::parse(convention).map_err(to_py)?;
    let shape = input_ids.as_array().dim();
    // Borrow everything before releasing the GIL.
    let input_ids_slice = contiguous(&input_ids, "input_ids")?;
    let document_ids_slice = contiguous(&document_ids, "document_ids")?;
    let starts_columns = document_starts.as_ref().map(|a| a.as_array().dim().1);
    let cu_views = cu_seqlens
        .iter()
        .map(|(name, array)| Ok((name.as_str(), contiguous(array, "cu_seqlens")?)))
        .collect::<PyResult<Vec<_>>>()?;
    let max_views: Vec<(&str, i64)> = max_seqlen
        .iter()
        .map(|(name, value)| (name.as_str(), *value))
        .collect();
    let view = BatchView {
        rows: shape.0,
        width: shape.1,
        input_ids: input_ids_slice,
        document_ids: document_ids_slice,
        labels: grid_of("labels", &labels)?,
        position_ids: grid_of("position_ids", &position_ids)?,
        attention_mask: grid_of("attention_mask", &attention_mask)?,
        cu_seqlens: &cu_views,
        max_seqlen: &max_views,
        seq_idx: grid_of("seq_idx", &seq_idx)?,
        document_starts: grid_of("document_starts", &document_starts)?.zip(starts_columns),
        seq_lengths: seq_lengths
            .as_ref()
            .map(|a| contiguous(a, "seq_lengths"))
            .transpose()?,
    };
    let sources = match (&source_tokens, &source_lengths) {
        (Some(tokens), Some(lengths)) => Some(Sources {
            tokens: contiguous(tokens, "sequences")?,
            lengths: contiguous(lengths, "sequences")?,
        }),
        _ => None,
    };
    let expect = Expectations {
        capacity,
        pad_token_id,
        ignore_index,
        labels: labels_convention,
    };
    let report = py
        .detach(|| check::check_packing(view, sources, expect))
        .map_err(to_py)?;
    let violations = report
        .violations
        .into_iter()
        .map(|v| (v.kind.name(), v.row, v.position, v.detail))
        .collect();
    Ok((violations, report.num_violations))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pack, m)?)?;
    m.add_function(wrap_pyfunction!(lower_bounds, m)?)?;
    m.add_function(wrap_pyfunction!(pack_sequences, m)?)?;
    m.add_function(wrap_pyfunction!(check_packing, m)?)
}
