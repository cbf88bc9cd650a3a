//! Bindings of the crate-owned thread pool's size and placement.

use ferrofix_core::parallel as core;
use pyo3::prelude::*;

use crate::errors::to_py;

/// Threads the next parallel job will use (1 in a forked child).
#[pyfunction]
fn num_threads() -> PyResult<usize> {
    core::num_threads().map_err(to_py)
}

/// Fix the pool size (>= 1), overriding FERROFIX_NUM_THREADS; `None` returns to the default.
#[pyfunction]
#[pyo3(signature = (n))]
fn set_num_threads(n: Option<i64>) -> PyResult<()> {
    match n {
        None => {
            core::reset_num_threads();
            Ok(())
        }
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(0);
            core::set_num_threads(n).map_err(to_py)
        }
    }
}

/// The default size for a run split over `xdist_workers` pytest-xdist workers.
#[pyfunction]
fn default_num_threads(xdist_workers: usize) -> PyResult<usize> {
    core::default_num_threads(Some(&xdist_workers.to_string())).map_err(to_py)
}

/// The CPU each pool worker is bound to (empty: left to the scheduler); starts the pool.
#[pyfunction]
fn bound_cpus(py: Python<'_>) -> PyResult<Vec<usize>> {
    py.detach(core::bound_cpus).map_err(to_py)
}

/// Whether this process is a child forked after ferrofix's pool started.
#[pyfunction]
fn is_forked_child() -> bool {
    core::is_forked_child()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("max_threads", core::MAX_THREADS)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(default_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(bound_cpus, m)?)?;
    m.add_function(wrap_pyfunction!(is_forked_child, m)?)
}
