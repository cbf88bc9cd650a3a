//! With a one-thread pool all work runs on the calling thread: there is nothing to split,
//! and handing it over would only add a wake-up. Its own test binary: it sets the pool size.

use ferrofix_core::parallel::{install, install_sized, reset_num_threads, set_num_threads};
use rayon::prelude::*;

/// The sum of 0..n by a rayon iterator, and whether the caller's thread did all of it.
fn sum_on(caller: std::thread::ThreadId, n: u64) -> (u64, bool) {
    (0..n)
        .into_par_iter()
        .map(|i| (i, std::thread::current().id() == caller))
        .reduce(|| (0, true), |(a, x), (b, y)| (a + b, x && y))
}

#[test]
fn every_size_runs_on_the_caller_with_one_thread_and_large_work_moves_with_two() {
    let caller = std::thread::current().id();
    set_num_threads(1).unwrap();
    assert_eq!(
        install(|| sum_on(caller, 1_000_000)).unwrap(),
        (499_999_500_000, true)
    );
    let large = install_sized(1 << 20, 1_000, || sum_on(caller, 1_000_000)).unwrap();
    assert_eq!(large, (499_999_500_000, true));
    set_num_threads(2).unwrap();
    let (sum, all_here) = install(|| sum_on(caller, 1_000_000)).unwrap();
    assert_eq!((sum, all_here), (499_999_500_000, false));
    reset_num_threads();
}
