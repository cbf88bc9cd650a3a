//! Where the pool's workers run: each on a CPU of its own when the pool has one thread per
//! CPU the process may use.
//!
//! Why: a scheduler that packs threads onto few CPUs (the Firecracker VMs this project is
//! benchmarked on boot with `sched_vcpu_pack`) queues a woken worker on the CPU of the thread
//! that woke it, and moves it to an idle CPU only at a load-balancing tick, up to 4 ms later
//! at HZ=250. A parallel call after a few milliseconds idle then ran on one CPU for its first
//! milliseconds: in a bare `join` after 20 ms of work on one thread, the second half started
//! 2.6 ms late at the median when unbound and 0.1 ms late when each worker was bound.
//!
//! Invariants:
//! - Binding is a placement hint: a failure to read or set an affinity leaves the worker where
//!   the scheduler puts it and is never an error.
//! - Workers are bound only when the pool has exactly one thread per CPU the process may run
//!   on. A smaller pool (pytest-xdist workers, `FERROFIX_NUM_THREADS`, a cgroup CPU quota)
//!   stays free: several processes binding their workers to the same CPUs would stack them.
//! - `FERROFIX_BIND_THREADS=0` turns binding off; `1` (the default) allows it.

use crate::error::{Error, Result};

/// Environment variable that turns worker binding off (`0`) or allows it (`1`, the default).
pub const BIND_ENV: &str = "FERROFIX_BIND_THREADS";

/// Whether binding is allowed, from the value of `FERROFIX_BIND_THREADS` (pure, so testable).
///
/// # Errors
/// [`Error::InvalidArgument`] naming the variable when it is set to anything but 0 or 1.
pub fn binding_allowed(value: Option<&str>) -> Result<bool> {
    match value.map(str::trim) {
        None | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(other) => Err(Error::invalid(
            BIND_ENV,
            format!("must be 0 or 1, got {other:?}"),
        )),
    }
}

/// The CPU each of `threads` workers is bound to (worker i on `cpus[i]`), or empty to leave
/// them to the scheduler: binding needs more than one worker and one worker per allowed CPU.
pub fn worker_cpus(threads: usize, allowed: &[usize], binding_allowed: bool) -> Vec<usize> {
    if binding_allowed && threads > 1 && threads == allowed.len() {
        allowed.to_vec()
    } else {
        Vec::new()
    }
}

/// The CPUs the calling thread may run on, ascending (empty where that cannot be read).
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain bits, valid when zeroed; sched_getaffinity writes at most
    // the size passed, and CPU_ISSET reads inside the set for every index below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// The CPUs the calling thread may run on (not read on this platform: never bound).
#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Bind the calling thread to `cpu`; a failure leaves it unbound.
#[cfg(target_os = "linux")]
pub fn bind_current_thread(cpu: usize) {
    if cpu >= libc::CPU_SETSIZE as usize {
        return;
    }
    // SAFETY: a zeroed `cpu_set_t` is valid, CPU_SET writes inside it (cpu < CPU_SETSIZE,
    // checked above), and sched_setaffinity only reads the size passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        // A failure (the CPU went offline, a seccomp policy) only loses the hint.
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Bind the calling thread to `cpu` (nothing to do on this platform).
#[cfg(not(target_os = "linux"))]
pub fn bind_current_thread(_cpu: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_0_and_1_are_accepted() {
        assert_eq!(binding_allowed(None), Ok(true));
        assert_eq!(binding_allowed(Some("1")), Ok(true));
        assert_eq!(binding_allowed(Some(" 0 ")), Ok(false));
        let err = binding_allowed(Some("yes")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "FERROFIX_BIND_THREADS: must be 0 or 1, got \"yes\""
        );
    }

    #[test]
    fn workers_are_bound_only_when_the_pool_owns_every_allowed_cpu() {
        assert_eq!(worker_cpus(2, &[0, 1], true), [0, 1]);
        assert_eq!(worker_cpus(3, &[1, 4, 6], true), [1, 4, 6]);
        assert!(worker_cpus(2, &[0, 1], false).is_empty());
        assert!(worker_cpus(1, &[3], true).is_empty());
        assert!(worker_cpus(2, &[0, 1, 2, 3], true).is_empty());
        assert!(worker_cpus(4, &[0, 1], true).is_empty());
        assert!(worker_cpus(2, &[], true).is_empty());
    }
}
