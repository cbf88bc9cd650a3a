//! NVRTC: compile a kernel source for one architecture, once per process.
//!
//! Results are cached in memory by `(kernel, target)` and, when the environment variable
//! `FERROFIX_KERNEL_CACHE` names a directory, on disk under a name that hashes the source,
//! the target and the NVRTC version (so an edited kernel or a new compiler never reuses a
//! stale image). A compile that succeeds with warnings is still an error: the kernels are
//! meant to compile cleanly, and CI checks exactly that.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::nvrtc::sys;

use crate::kernels::KernelSource;
use crate::library::NVRTC;
use crate::{Error, Result};

/// What to compile to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// PTX for a virtual architecture, `compute_XY`.
    Ptx(u32),
    /// Machine code for a real architecture, `sm_XY` (what the device path loads: a
    /// cubin runs on any driver of the same major version, PTX needs one at least as new
    /// as NVRTC to JIT it).
    Cubin(u32),
}

impl Target {
    /// The `--gpu-architecture` value.
    pub fn arch(&self) -> String {
        match self {
            Self::Ptx(cc) => format!("compute_{cc}"),
            Self::Cubin(cc) => format!("sm_{cc}"),
        }
    }
}

/// Options every kernel is compiled with.
const OPTIONS: [&str; 2] = ["-std=c++17", "--fmad=true"];

fn guarded<T>(op: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    NVRTC.guarded(op, f)
}

/// Whether NVRTC can be loaded. Never panics.
pub fn nvrtc_available() -> bool {
    NVRTC.present()
}

/// NVRTC's version as `(major, minor)`.
///
/// # Errors
/// [`Error::CudaUnavailable`] when NVRTC cannot be loaded.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    guarded("nvrtcVersion", || {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: the library is loaded (checked by `guarded`); both are valid out-pointers.
        let status = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
        check(status, "nvrtcVersion", "")?;
        Ok((major, minor))
    })
}

fn check(status: sys::nvrtcResult, op: &str, log: &str) -> Result<()> {
    if status == sys::nvrtcResult::NVRTC_SUCCESS {
        return Ok(());
    }
    let mut message = format!("{status:?}");
    if !log.is_empty() {
        message.push_str(":\n");
        message.push_str(log.trim_end());
    }
    Err(Error::Cuda {
        op: op.to_string(),
        message,
    })
}

/// A compiled kernel image: PTX text (NUL-terminated) or a cubin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The bytes the driver loads.
    pub bytes: Vec<u8>,
    /// The compiler's log (empty for a clean compile).
    pub log: String,
}

type SizeFn = unsafe fn(sys::nvrtcProgram, *mut usize) -> sys::nvrtcResult;
type GetFn = unsafe fn(sys::nvrtcProgram, *mut c_char) -> sys::nvrtcResult;

/// An NVRTC program, destroyed on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from a successful nvrtcCreateProgram and is destroyed once.
        let _ = unsafe { sys::nvrtcDestroyProgram(&mut self.0) };
    }
}

impl Program {
    fn log(&self) -> String {
        let mut size = 0usize;
        // SAFETY: valid program, valid out-pointer.
        if unsafe { sys::nvrtcGetProgramLogSize(self.0, &mut size) }
            != sys::nvrtcResult::NVRTC_SUCCESS
        {
            return String::new();
        }
        let mut log = vec![0u8; size.max(1)];
        // SAFETY: `log` holds the `size` bytes NVRTC said it needs.
        unsafe { sys::nvrtcGetProgramLog(self.0, log.as_mut_ptr().cast::<c_char>()) };
        CStr::from_bytes_until_nul(&log)
            .map(|text| text.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn output(&self, target: Target, op: &str) -> Result<Vec<u8>> {
        let mut size = 0usize;
        let (get_size, get) = match target {
            Target::Ptx(_) => (sys::nvrtcGetPTXSize as SizeFn, sys::nvrtcGetPTX as GetFn),
            Target::Cubin(_) => (
                sys::nvrtcGetCUBINSize as SizeFn,
                sys::nvrtcGetCUBIN as GetFn,
            ),
        };
        // SAFETY: valid program, valid out-pointer.
        let status = unsafe { get_size(self.0, &mut size) };
        check(status, op, "")?;
        let mut bytes = vec![0u8; size];
        // SAFETY: `bytes` holds the `size` bytes NVRTC reported.
        let status = unsafe { get(self.0, bytes.as_mut_ptr().cast::<c_char>()) };
        check(status, op, "")?;
        Ok(bytes)
    }
}

/// Compile `kernel` for `target`, without any cache. A compile with warnings is an error.
///
/// # Errors
/// [`Error::CudaUnavailable`] without NVRTC; [`Error::Cuda`] naming the kernel and target,
/// with NVRTC's log, on a compile error or warning.
pub fn compile_uncached(kernel: &KernelSource, target: Target) -> Result<Image> {
    let op = format!("nvrtc compile of {} for {}", kernel.file, target.arch());
    guarded(&op, || {
        let source = CString::new(kernel.source)
            .map_err(|_| Error::invalid("kernel", "source contains a NUL byte"))?;
        let name = CString::new(kernel.file)
            .map_err(|_| Error::invalid("kernel", "file name contains a NUL byte"))?;
        let mut options: Vec<CString> = OPTIONS
            .iter()
            .map(|option| CString::new(*option))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::invalid("kernel", "option contains a NUL byte"))?;
        options.push(
            CString::new(format!("--gpu-architecture={}", target.arch()))
                .map_err(|_| Error::invalid("target", "contains a NUL byte"))?,
        );
        let pointers: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
        let mut raw = std::ptr::null_mut();
        // SAFETY: `source` and `name` are NUL-terminated and outlive the program (dropped
        // at the end of this closure, after `program`); no headers are passed.
        let status = unsafe {
            sys::nvrtcCreateProgram(
                &mut raw,
                source.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        check(status, &op, "")?;
        let program = Program(raw);
        let count = i32::try_from(pointers.len()).unwrap_or(i32::MAX);
        // SAFETY: `pointers` holds `count` NUL-terminated options alive for the call.
        let status = unsafe { sys::nvrtcCompileProgram(program.0, count, pointers.as_ptr()) };
        let log = program.log();
        check(status, &op, &log)?;
        if log.to_lowercase().contains("warning") {
            return Err(Error::Cuda {
                op: op.clone(),
                message: format!("compiled with warnings:\n{}", log.trim_end()),
            });
        }
        let bytes = program.output(target, &op)?;
        Ok(Image { bytes, log })
    })
}

/// FNV-1a, a stable 64-bit hash for the disk cache's file names.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for part in parts {
        for &byte in *part {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash = (hash ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn disk_path(kernel: &KernelSource, target: Target) -> Option<PathBuf> {
    let dir = std::env::var_os("FERROFIX_KERNEL_CACHE").filter(|dir| !dir.is_empty())?;
    let (major, minor) = nvrtc_version().ok()?;
    let version = format!("{major}.{minor} {}", OPTIONS.join(" "));
    let arch = target.arch();
    let key = fnv1a(&[
        kernel.source.as_bytes(),
        arch.as_bytes(),
        version.as_bytes(),
    ]);
    let suffix = match target {
        Target::Ptx(_) => "ptx",
        Target::Cubin(_) => "cubin",
    };
    let stem = kernel.file.trim_end_matches(".cu");
    Some(PathBuf::from(dir).join(format!("{stem}-{arch}-{key:016x}.{suffix}")))
}

/// Compile `kernel` for `target` once per process (and once per machine with the disk
/// cache); later calls return the same image.
///
/// # Errors
/// As [`compile_uncached`].
pub fn compile(kernel: &KernelSource, target: Target) -> Result<Arc<Image>> {
    type Cache = Mutex<HashMap<(&'static str, Target), Arc<Image>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let key = (kernel.file, target);
    if let Some(image) = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&key)
    {
        return Ok(image.clone());
    }
    let path = disk_path(kernel, target);
    let cached = path.as_ref().and_then(|path| std::fs::read(path).ok());
    let image = match cached {
        Some(bytes) => Arc::new(Image {
            bytes,
            log: String::new(),
        }),
        None => {
            let image = Arc::new(compile_uncached(kernel, target)?);
            if let Some(path) = &path {
                // Best effort: a read-only or full cache directory only costs a recompile.
                let _ = std::fs::create_dir_all(path.parent().unwrap_or(path));
                let partial = path.with_extension("partial");
                if std::fs::write(&partial, &image.bytes).is_ok() {
                    let _ = std::fs::rename(&partial, path);
                }
            }
            image
        }
    };
    cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(key, image.clone());
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::KERNELS;

    #[test]
    fn targets_spell_their_architecture() {
        assert_eq!(Target::Ptx(80).arch(), "compute_80");
        assert_eq!(Target::Cubin(90).arch(), "sm_90");
    }

    #[test]
    fn the_cache_key_changes_with_any_part() {
        let base = fnv1a(&[b"src", b"sm_90"]);
        assert_ne!(base, fnv1a(&[b"src", b"sm_80"]));
        assert_ne!(base, fnv1a(&[b"srcsm_90"]));
        assert_eq!(base, fnv1a(&[b"src", b"sm_90"]));
    }

    #[test]
    fn every_kernel_compiles_cleanly_where_nvrtc_loads() {
        if !nvrtc_available() {
            // CPU-only machines without NVRTC on the library path: the Python test suite
            // preloads torch's NVRTC and runs the same check there.
            assert!(matches!(
                compile_uncached(&KERNELS[0], Target::Ptx(80)),
                Err(Error::CudaUnavailable { .. })
            ));
            return;
        }
        for kernel in KERNELS {
            for target in [Target::Ptx(80), Target::Ptx(90), Target::Cubin(90)] {
                let image = compile_uncached(kernel, target).unwrap();
                assert!(!image.bytes.is_empty());
            }
        }
    }
}
