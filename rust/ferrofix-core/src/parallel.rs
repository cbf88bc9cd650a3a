//! The crate-owned rayon pool, its sizing, and the fork guard.
//!
//! Invariants:
//! - ferrofix never touches rayon's global pool (a host application may own it) and never
//!   builds it: all parallel work runs inside [`install`] on a pool this module owns.
//! - Size: an explicit [`set_num_threads`] wins; else `FERROFIX_NUM_THREADS`; else the
//!   machine's cores divided by `PYTEST_XDIST_WORKER_COUNT` (at least 1), so `pytest -n N`
//!   does not oversubscribe the machine N-fold.
//! - After `fork()` the child has none of the parent's pool threads; touching that pool
//!   would wait forever. A `pthread_atfork` child handler flags the fork and the child then
//!   runs every job serially on a one-thread pool of its own.
//! - Results never depend on the thread count: callers split work by element index.
//! - Work estimated under ~20 us ([`install_sized`]), and all work when the pool has one
//!   thread, runs on the calling thread: waking a worker would cost more. The calling thread
//!   does it as the only worker of a one-thread pool that adopts it (at most
//!   [`MAX_ADOPTED_THREADS`] threads), so rayon iterators inside still work.
//! - When the pool has one thread per CPU the process may use, each worker is bound to its
//!   own CPU (see `placement`); `FERROFIX_BIND_THREADS=0` turns that off.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};

use rayon::prelude::*;

use crate::error::{Error, Result};

mod placement;

pub use placement::BIND_ENV;

/// Environment variable that fixes the pool size.
pub const THREADS_ENV: &str = "FERROFIX_NUM_THREADS";
/// The largest pool: far past any core count, and small enough that a typo (100000) is an
/// error instead of a process that spends minutes starting and waking threads.
pub const MAX_THREADS: usize = 1024;
/// Set by pytest-xdist in each worker to the number of workers.
pub const XDIST_WORKERS_ENV: &str = "PYTEST_XDIST_WORKER_COUNT";

static FORKED: AtomicBool = AtomicBool::new(false);
/// The pid that registered the fork guard; a different pid later means we are a child.
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
static REGISTER_ATFORK: Once = Once::new();

struct PoolState {
    /// Size set by [`set_num_threads`]; `None` means "resolve from the environment".
    requested: Option<usize>,
    pool: Option<Pool>,
}

/// A running pool and where its workers are.
#[derive(Clone)]
struct Pool {
    threads: Arc<rayon::ThreadPool>,
    /// The CPU each worker is bound to, in worker order (empty: not bound).
    bound_cpus: Arc<[usize]>,
}

static STATE: Mutex<PoolState> = Mutex::new(PoolState {
    requested: None,
    pool: None,
});
/// The serial pool of a forked child (never used in the parent).
static CHILD_POOL: Mutex<Option<Pool>> = Mutex::new(None);

extern "C" fn mark_forked_child() {
    // Only an atomic store: the handler runs in the child right after fork, where taking a
    // lock that another parent thread held would deadlock.
    FORKED.store(true, Ordering::SeqCst);
}

fn register_fork_guard() {
    REGISTER_ATFORK.call_once(|| {
        OWNER_PID.store(std::process::id() as i32, Ordering::SeqCst);
        // SAFETY: `mark_forked_child` is an `extern "C"` function with no arguments that only
        // performs an atomic store, which is async-signal-safe as the child handler requires.
        // A non-zero return (ENOMEM) only loses the handler; the pid check still catches the fork.
        unsafe {
            libc::pthread_atfork(None, None, Some(mark_forked_child));
        }
    });
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the state half-written (every write is a
    // single assignment), so a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether this process is a child forked after the pool was first used.
pub fn is_forked_child() -> bool {
    if FORKED.load(Ordering::SeqCst) {
        return true;
    }
    let owner = OWNER_PID.load(Ordering::SeqCst);
    owner != 0 && owner != std::process::id() as i32
}

/// The default size from environment values (pure, so it is testable).
///
/// `threads_env` is `FERROFIX_NUM_THREADS`, `xdist_workers_env` is
/// `PYTEST_XDIST_WORKER_COUNT`, `cores` the machine's available parallelism.
///
/// # Errors
/// [`Error::InvalidArgument`] when either variable is set but is not an integer >= 1.
pub fn resolve_num_threads(
    threads_env: Option<&str>,
    xdist_workers_env: Option<&str>,
    cores: usize,
) -> Result<usize> {
    let parse = |name: &'static str, value: &str| -> Result<usize> {
        match value.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(Error::invalid(
                name,
                format!("must be an integer >= 1, got {value:?}"),
            )),
        }
    };
    if let Some(value) = threads_env {
        return parse(THREADS_ENV, value).and_then(|n| check_at_most_max(THREADS_ENV, n));
    }
    let workers = match xdist_workers_env {
        Some(value) => parse(XDIST_WORKERS_ENV, value)?,
        None => 1,
    };
    Ok((cores / workers).max(1))
}

/// The default size on this machine for a run with `xdist_workers` workers (None: no
/// xdist), honouring `FERROFIX_NUM_THREADS`.
///
/// # Errors
/// [`Error::InvalidArgument`] when a variable is set but is not an integer >= 1.
pub fn default_num_threads(xdist_workers: Option<&str>) -> Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    resolve_num_threads(
        std::env::var(THREADS_ENV).ok().as_deref(),
        xdist_workers,
        cores,
    )
}

fn env_num_threads() -> Result<usize> {
    default_num_threads(std::env::var(XDIST_WORKERS_ENV).ok().as_deref())
}

/// Fix the pool size, overriding the environment. The pool is rebuilt on next use.
///
/// # Errors
/// [`Error::InvalidArgument`] when `n` is 0.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid("num_threads", "must be >= 1, got 0"));
    }
    check_at_most_max("num_threads", n)?;
    let mut state = lock(&STATE);
    state.requested = Some(n);
    state.pool = None;
    Ok(())
}

fn check_at_most_max(name: &'static str, n: usize) -> Result<usize> {
    if n > MAX_THREADS {
        return Err(Error::invalid(
            name,
            format!("must be at most {MAX_THREADS}, got {n}"),
        ));
    }
    Ok(n)
}

/// Forget any [`set_num_threads`] value: the size comes from the environment again.
pub fn reset_num_threads() {
    let mut state = lock(&STATE);
    state.requested = None;
    state.pool = None;
}

/// The number of threads parallel work will use (1 in a forked child).
///
/// # Errors
/// [`Error::InvalidArgument`] when the size comes from a malformed environment variable.
pub fn num_threads() -> Result<usize> {
    if is_forked_child() {
        return Ok(1);
    }
    let requested = lock(&STATE).requested;
    match requested {
        Some(n) => Ok(n),
        None => env_num_threads(),
    }
}

/// A pool of `threads` workers, each bound to `cpus[i]` when `cpus` is not empty.
fn build_pool(threads: usize, cpus: Vec<usize>) -> Result<Pool> {
    let bound_cpus: Arc<[usize]> = cpus.into();
    let bind = Arc::clone(&bound_cpus);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ferrofix-{i}"))
        .start_handler(move |i| {
            if let Some(&cpu) = bind.get(i) {
                placement::bind_current_thread(cpu);
            }
        })
        .build()
        .map(|threads| Pool {
            threads: Arc::new(threads),
            bound_cpus,
        })
        .map_err(|e| {
            Error::invalid(
                "num_threads",
                format!("cannot start {threads} threads: {e}"),
            )
        })
}

fn pool() -> Result<Pool> {
    register_fork_guard();
    if is_forked_child() {
        let mut child = lock(&CHILD_POOL);
        if let Some(pool) = child.as_ref() {
            return Ok(pool.clone());
        }
        let pool = build_pool(1, Vec::new())?;
        *child = Some(pool.clone());
        return Ok(pool);
    }
    let mut state = lock(&STATE);
    if let Some(pool) = state.pool.as_ref() {
        return Ok(pool.clone());
    }
    let threads = match state.requested {
        Some(n) => n,
        None => env_num_threads()?,
    };
    let allowed = placement::binding_allowed(std::env::var(BIND_ENV).ok().as_deref())?;
    let cpus = placement::worker_cpus(threads, &placement::allowed_cpus(), allowed);
    let pool = build_pool(threads, cpus)?;
    state.pool = Some(pool.clone());
    Ok(pool)
}

/// The CPU each worker of the pool is bound to, in worker order; empty when the workers are
/// left to the scheduler. Starts the pool if it is not running.
///
/// # Errors
/// [`Error::InvalidArgument`] when the pool cannot be sized or started.
pub fn bound_cpus() -> Result<Vec<usize>> {
    Ok(pool()?.bound_cpus.to_vec())
}

/// Run `op` on the ferrofix pool; rayon iterators inside it use that pool.
///
/// # Errors
/// [`Error::InvalidArgument`] when the pool cannot be sized or started.
pub fn install<R: Send>(op: impl FnOnce() -> R + Send) -> Result<R> {
    let pool = pool()?;
    // A one-thread pool (each pytest-xdist worker on a small machine, a forked child) has
    // nothing to split across: handing work to its thread only adds the wake-up.
    if pool.threads.current_num_threads() == 1
        && let Some(here) = calling_thread_pool()
    {
        return Ok(here.install(op));
    }
    run_on(&pool.threads, op)
}

/// Run `op` on `pool` and wait for it.
///
/// A thread that ran small work in place belongs to its own one-thread pool (see
/// [`calling_thread_pool`]), and rayon makes such a thread wait for another pool by spinning
/// (32 `yield`s before it sleeps), which on a small machine takes a core from the workers it
/// waits for (pack_sequences ran ~15% slower). So that thread hands `op` over with `spawn`
/// and sleeps on a channel at once, as rayon's own wait from outside any pool does.
fn run_on<R: Send>(pool: &rayon::ThreadPool, op: impl FnOnce() -> R + Send) -> Result<R> {
    let outside_every_pool = rayon::current_thread_index().is_none();
    if outside_every_pool || pool.current_thread_index().is_some() {
        return Ok(pool.install(op));
    }
    let (done, result) = std::sync::mpsc::sync_channel(1);
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        // The receiver below outlives the send: it waits for it.
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(op)));
    });
    // SAFETY: only the lifetime is changed. The job borrows what `op` borrows, and this
    // function returns only once `recv` has returned: either the job has sent, after which
    // it touches nothing borrowed (it only drops its sender, whose state is on the heap), or
    // the job was dropped unrun, after which nothing of it runs.
    let job: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(job) };
    pool.spawn(job);
    match result.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(Error::invalid(
            "num_threads",
            "the thread pool stopped before running the work",
        )),
    }
}

/// Work estimated below this runs on the calling thread: handing it to the pool means waking
/// a sleeping worker and then sleeping until it is done, 10-40 us on a virtual machine, more
/// than the work itself for the small inputs tests pass most.
const INLINE_BELOW_NS: u64 = 20_000;

/// [`install`] for `items` pieces of work of about `ns_per_item` each (a measured estimate):
/// below ~20 us in all, `op` runs right here and rayon iterators inside it run serially;
/// otherwise on the pool. Results are the same either way (work is split by index).
///
/// # Errors
/// [`Error::InvalidArgument`] when the pool is needed and cannot be sized or started.
pub fn install_sized<R: Send>(
    items: usize,
    ns_per_item: u64,
    op: impl FnOnce() -> R + Send,
) -> Result<R> {
    if (items as u64).saturating_mul(ns_per_item) < INLINE_BELOW_NS
        && let Some(here) = calling_thread_pool()
    {
        return Ok(here.install(op));
    }
    install(op)
}

/// Threads that may run small work in place. rayon cannot release a pool that adopted an
/// existing thread, so each costs ~7.5 KB for the life of the process; past this many (a
/// suite that starts a thread per request) the rest hand small work to the pool. No real
/// cap in this crate's unit tests, which run each test on a new thread and assert where
/// work ran; tests/adopted_threads.rs checks the cap.
pub const MAX_ADOPTED_THREADS: usize = if cfg!(test) { 1 << 16 } else { 64 };
static ADOPTED_THREADS: AtomicUsize = AtomicUsize::new(0);

/// A one-thread pool whose only worker is the calling thread: `install` on it runs `op` in
/// place, and rayon iterators inside find no other worker to wake. Built once per thread and
/// kept for the process's life. `None` when this thread already belongs to a pool (a
/// ferrofix worker, whose nested `install` runs in place anyway) or
/// [`MAX_ADOPTED_THREADS`] threads have one.
fn calling_thread_pool() -> Option<&'static rayon::ThreadPool> {
    thread_local! {
        static HERE: std::cell::OnceCell<Option<&'static rayon::ThreadPool>> =
            const { std::cell::OnceCell::new() };
    }
    HERE.try_with(|cell| {
        *cell.get_or_init(|| {
            if rayon::current_thread_index().is_some()
                || ADOPTED_THREADS.fetch_add(1, Ordering::Relaxed) >= MAX_ADOPTED_THREADS
            {
                return None;
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .use_current_thread()
                .build()
                .ok()
                .map(|pool| &*Box::leak(Box::new(pool)))
        })
    })
    .ok()
    .flatten()
}

/// Fill `out` in parallel, element `i` getting `value(offset + i)`.
///
/// Work is split into chunks of `chunk_len` elements; because each element depends only on
/// its global index, the result is identical for every thread count and chunk length.
///
/// # Errors
/// [`Error::InvalidArgument`] when `chunk_len` is 0 or the pool cannot start.
pub fn fill_indexed<T: Send>(
    out: &mut [T],
    offset: u64,
    chunk_len: usize,
    value: impl Fn(u64) -> T + Sync,
) -> Result<()> {
    fill_chunks(out, offset, chunk_len, |start, slots| {
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = value(start.wrapping_add(i as u64));
        }
    })
}

/// Fill `out` in parallel chunks of `chunk_len` elements: `fill(start, slots)` writes the
/// elements `start, start + 1, ...` (global indices: `offset` plus the position in `out`,
/// wrapping) into `slots`. For fills that produce several elements per step; `fill` must
/// make each element depend on its global index alone, as [`fill_indexed`] does.
///
/// # Errors
/// [`Error::InvalidArgument`] when `chunk_len` is 0 or the pool cannot start.
pub fn fill_chunks<T: Send>(
    out: &mut [T],
    offset: u64,
    chunk_len: usize,
    fill: impl Fn(u64, &mut [T]) + Sync,
) -> Result<()> {
    if chunk_len == 0 {
        return Err(Error::invalid("chunk_len", "must be >= 1, got 0"));
    }
    if out.len() <= chunk_len {
        // One chunk: handing it to the pool and waiting for a worker to wake costs more
        // (10-20 us on a VM) than filling it here.
        fill(offset, out);
        return Ok(());
    }
    install(|| {
        out.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(chunk, slots)| {
                fill(offset.wrapping_add((chunk * chunk_len) as u64), slots);
            });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_threads_win_then_cores_split_by_xdist_workers() {
        assert_eq!(resolve_num_threads(Some("3"), Some("4"), 16), Ok(3));
        assert_eq!(resolve_num_threads(None, Some("4"), 16), Ok(4));
        assert_eq!(resolve_num_threads(None, Some("3"), 16), Ok(5));
        assert_eq!(resolve_num_threads(None, Some("8"), 2), Ok(1));
        assert_eq!(resolve_num_threads(None, None, 6), Ok(6));
    }

    #[test]
    fn malformed_env_values_name_the_variable() {
        let err = resolve_num_threads(Some("0"), None, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "FERROFIX_NUM_THREADS: must be an integer >= 1, got \"0\""
        );
        assert_eq!(
            resolve_num_threads(Some("100000"), None, 2)
                .unwrap_err()
                .to_string(),
            "FERROFIX_NUM_THREADS: must be at most 1024, got 100000"
        );
        assert_eq!(resolve_num_threads(Some("1024"), None, 2), Ok(1024));
        assert_eq!(
            set_num_threads(MAX_THREADS + 1).unwrap_err().to_string(),
            "num_threads: must be at most 1024, got 1025"
        );
        let err = resolve_num_threads(None, Some("many"), 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PYTEST_XDIST_WORKER_COUNT: must be an integer >= 1, got \"many\""
        );
    }

    #[test]
    fn one_chunk_on_the_caller_and_many_on_the_pool_fill_alike() {
        for len in [0, 1, 7, 8, 9, 33] {
            let mut out = vec![0u64; len];
            fill_indexed(&mut out, u64::MAX - 3, 8, |i| i).unwrap();
            let expected: Vec<u64> = (0..len as u64)
                .map(|i| i.wrapping_add(u64::MAX - 3))
                .collect();
            assert_eq!(out, expected, "{len}");
        }
    }

    /// The sum of 0..n by a rayon iterator, and the names of the threads that added.
    fn sum_and_threads(n: u64) -> (u64, Vec<String>) {
        let name = || std::thread::current().name().unwrap_or("").to_string();
        let (sum, mut names) = (0..n as usize)
            .into_par_iter()
            .with_max_len(1024)
            .map(|i| (i as u64, vec![name()]))
            .reduce(
                || (0, Vec::new()),
                |(a, mut x), (b, y)| {
                    x.extend(y);
                    (a + b, x)
                },
            );
        names.sort();
        names.dedup();
        (sum, names)
    }

    #[test]
    fn small_work_runs_on_the_caller_and_large_on_the_pool_alike() {
        let caller = std::thread::current().name().unwrap_or("").to_string();
        let n = 100_000u64;
        let expected = n * (n - 1) / 2;
        let (small, here) = install_sized(1, 1, || sum_and_threads(n)).unwrap();
        assert_eq!((small, here), (expected, vec![caller.clone()]));
        // The caller now belongs to its own one-thread pool; large work still goes to the
        // ferrofix workers (whose names say so), and small work nested inside stays there.
        for _ in 0..3 {
            let (large, workers, nested) = install_sized(n as usize, 1_000, || {
                let (sum, workers) = sum_and_threads(n);
                (
                    sum,
                    workers,
                    install_sized(1, 1, || sum_and_threads(10)).unwrap(),
                )
            })
            .unwrap();
            assert_eq!(large, expected);
            assert!(
                workers.iter().all(|w| w.starts_with("ferrofix-")),
                "{workers:?}"
            );
            assert_eq!(nested.0, 45);
            assert_eq!(
                install_sized(1, 1, || sum_and_threads(n)).unwrap().1,
                std::slice::from_ref(&caller)
            );
        }
    }

    #[test]
    fn a_panic_in_pool_work_reaches_the_caller_after_in_place_work() {
        install_sized(1, 1, || ()).unwrap();
        let caught = std::panic::catch_unwind(|| install(|| panic!("from the pool")));
        let message = caught.err().and_then(|p| p.downcast_ref::<&str>().copied());
        assert_eq!(message, Some("from the pool"));
        // The pool still works afterwards.
        assert_eq!(install(|| sum_and_threads(1000).0).unwrap(), 499_500);
    }

    #[test]
    fn zero_threads_and_zero_chunk_are_rejected() {
        assert!(set_num_threads(0).is_err());
        let mut out = [0u64; 4];
        assert!(fill_indexed(&mut out, 0, 0, |i| i).is_err());
    }

    /// The CPU a thread runs on and the CPUs it may run on.
    #[cfg(target_os = "linux")]
    fn where_am_i() -> (usize, Vec<usize>) {
        // SAFETY: sched_getcpu has no arguments and no preconditions.
        let cpu = unsafe { libc::sched_getcpu() };
        (
            usize::try_from(cpu).unwrap_or(usize::MAX),
            placement::allowed_cpus(),
        )
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn bound_workers_run_on_their_own_cpu() {
        let allowed = placement::allowed_cpus();
        let cpus = placement::worker_cpus(allowed.len(), &allowed, true);
        if cpus.is_empty() {
            return; // one CPU: nothing to spread
        }
        let pool = build_pool(cpus.len(), cpus.clone()).unwrap();
        assert_eq!(*pool.bound_cpus, *cpus);
        let seen = pool
            .threads
            .broadcast(|context| (context.index(), where_am_i()));
        for (worker, (cpu, allowed_now)) in seen {
            assert_eq!(allowed_now, [cpus[worker]], "worker {worker}");
            assert_eq!(cpu, cpus[worker], "worker {worker}");
        }
        // An unbound pool leaves its workers every allowed CPU.
        let free = build_pool(2, Vec::new()).unwrap();
        assert!(free.bound_cpus.is_empty());
        for (_, allowed_now) in free.threads.broadcast(|_| where_am_i()) {
            assert_eq!(allowed_now, allowed);
        }
    }
}
