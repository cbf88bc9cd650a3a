//! `ferrofix._core`: the PyO3 extension. Conversion only; the logic lives in ferrofix-core.
//!
//! Each binding function extracts (borrows arrays, parses option strings), runs the core
//! with the GIL released (`py.detach`) whenever rayon may run, and converts the result back.

use pyo3::prelude::*;

mod buffer_pool;
mod compare;
mod convert;
mod cuda;
mod errors;
mod int_lists;
mod loss;
mod memory;
mod noise_schedule;
mod packing;
mod parallel;
mod rng;
mod tokenizer;

/// Build profile of this extension: "release" or "debug".
const BUILD_PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("build_profile", BUILD_PROFILE)?;
    parallel::register(m)?;
    rng::register(m)?;
    loss::register(m)?;
    buffer_pool::register(m)?;
    memory::register(m)?;
    noise_schedule::register(m)?;
    packing::register(m)?;
    int_lists::register(m)?;
    compare::register(m)?;
    tokenizer::register(m)?;
    cuda::register(m)?;
    errors::register(m)?;
    Ok(())
}
