//! Small work runs in place on at most `MAX_ADOPTED_THREADS` threads; later threads hand it
//! to the pool. Its own test binary: the count is per process, and no other test may use it.

use ferrofix_core::parallel::{MAX_ADOPTED_THREADS, install_sized};

#[test]
fn only_so_many_threads_are_adopted_and_the_rest_use_the_pool() {
    let ran_in_place: Vec<bool> = (0..MAX_ADOPTED_THREADS + 20)
        .map(|_| {
            std::thread::spawn(|| {
                let me = std::thread::current().id();
                let (here, sum) = install_sized(1, 1, || {
                    (std::thread::current().id() == me, (0..10).sum::<i32>())
                })
                .unwrap();
                assert_eq!(sum, 45);
                here
            })
            .join()
            .unwrap()
        })
        .collect();
    let expected: Vec<bool> = (0..MAX_ADOPTED_THREADS + 20)
        .map(|i| i < MAX_ADOPTED_THREADS)
        .collect();
    assert_eq!(ran_in_place, expected);
}
