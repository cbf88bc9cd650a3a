//! The memory check behind every output sized by an argument, for the Python functions
//! that allocate with numpy (the native ones call the core's directly).

use ferrofix_core::memory::outputs_shortfall;
use pyo3::prelude::*;

/// Why `arrays` outputs of `shape` with `element_bytes` per element cannot fit in this
/// machine's memory, or None when they can. Dims past `usize` count as unbounded.
#[pyfunction]
fn outputs_shortfall_reason(
    arrays: usize,
    shape: Vec<u128>,
    element_bytes: usize,
) -> Option<String> {
    let dims: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    outputs_shortfall(arrays, &dims, element_bytes)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(outputs_shortfall_reason, m)?)
}
