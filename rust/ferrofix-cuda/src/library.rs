//! Guarding calls into a dynamically loaded CUDA library.
//!
//! cudarc dlopens `libcuda` and `libnvrtc` on first use and panics when they cannot be
//! found, so every call is preceded by a probe (`is_culib_present`), and any panic that
//! still escapes cudarc becomes an error instead of crossing into Python. A library found
//! once stays loaded, so a positive probe is remembered; a negative one is repeated, since
//! the Python side may preload NVRTC later.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Result};

/// One dynamically loaded library and how to probe for it.
pub(crate) struct Library {
    /// cudarc's `is_culib_present` for this library.
    probe: unsafe fn() -> bool,
    /// What a missing library means to the user.
    missing: &'static str,
    /// Set once the probe has succeeded.
    found: AtomicBool,
}

impl Library {
    pub(crate) const fn new(probe: unsafe fn() -> bool, missing: &'static str) -> Self {
        Self {
            probe,
            missing,
            found: AtomicBool::new(false),
        }
    }

    /// Whether the library loads. Never panics.
    pub(crate) fn present(&self) -> bool {
        if self.found.load(Ordering::Relaxed) {
            return true;
        }
        let probe = self.probe;
        // SAFETY: the probes only dlopen candidate library names; they call nothing in them.
        let present = catch_unwind(|| unsafe { probe() }).unwrap_or(false);
        if present {
            self.found.store(true, Ordering::Relaxed);
        }
        present
    }

    /// Run `f`, which calls into this library through cudarc: a missing library is
    /// [`Error::CudaUnavailable`], an escaped panic [`Error::Cuda`] naming `op`.
    pub(crate) fn guarded<T>(&self, op: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.present() {
            return Err(Error::CudaUnavailable {
                reason: self.missing.to_string(),
            });
        }
        catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
            Err(Error::Cuda {
                op: op.to_string(),
                message: "the CUDA bindings panicked (see stderr)".into(),
            })
        })
    }
}

/// The CUDA driver, `libcuda`.
pub(crate) static DRIVER: Library = Library::new(
    cudarc::driver::sys::is_culib_present,
    "the CUDA driver library (libcuda.so) was not found",
);

/// The runtime compiler, `libnvrtc`.
pub(crate) static NVRTC: Library = Library::new(
    cudarc::nvrtc::sys::is_culib_present,
    "the NVRTC library (libnvrtc.so) was not found; install torch or the \
     nvidia-cuda-nvrtc package and call ferrofix through Python, which preloads it",
);

#[cfg(test)]
mod tests {
    use super::*;

    fn absent() -> bool {
        false
    }

    fn panics() -> bool {
        #[allow(clippy::panic)]
        {
            panic!("probe failed")
        }
    }

    #[test]
    fn a_missing_library_or_a_panic_becomes_an_error() {
        let missing = Library::new(absent, "libfoo was not found");
        let err = missing.guarded("op", || Ok(())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CUDA is not available: libfoo was not found"
        );
        let broken = Library::new(panics, "libbar was not found");
        assert!(!broken.present());
        let present = Library::new(|| true, "unused");
        #[allow(clippy::panic)]
        let err = present
            .guarded::<()>("cuFoo", || panic!("inside"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CUDA error in cuFoo: the CUDA bindings panicked (see stderr)"
        );
        assert!(present.guarded("cuFoo", || Ok(3)).is_ok());
    }
}
