//! ferrofix-core: the pure-Rust heart of pytest-ferrofix.
//!
//! This crate never sees Python: it takes slices and returns owned data and [`Result`]s.
//! Every data invariant is checked here, once, and reported as an [`Error`] naming the
//! argument, so the Python binding stays a thin conversion layer.
//!
//! One concern per module; later concerns (tokenizer, noise_schedule, packing, loss,
//! compare) land as sibling modules with the same stem as their binding and Python module.

pub mod compare;
pub mod dtype;
pub mod error;
pub mod idle_buffers;
pub mod loss;
pub mod memory;
pub mod noise_schedule;
pub mod packing;
pub mod parallel;
pub mod rng;
pub mod tokenizer;

pub use error::{Error, Result};
