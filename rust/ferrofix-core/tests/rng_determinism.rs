//! Property tests: the generator's output depends only on (seed, stream, index), never on
//! thread count, chunking or how a stream is sliced.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ferrofix_core::parallel;
use ferrofix_core::rng::{self, CounterRng};
use proptest::prelude::*;

fn uniform(n: usize, seed: u64, stream: u32, offset: u64) -> Vec<f64> {
    let mut out = vec![0.0; n];
    rng::fill_uniform_f64(&mut out, CounterRng::new(seed, stream), offset).unwrap();
    out
}

#[test]
fn bit_identical_for_1_2_and_8_threads() {
    let mut runs = Vec::new();
    for threads in [1, 2, 8] {
        parallel::set_num_threads(threads).unwrap();
        assert_eq!(parallel::num_threads().unwrap(), threads);
        let mut ints = vec![0i64; 100_003];
        rng::fill_integers(&mut ints, -7, 1_000_003, CounterRng::new(42, 3), 0).unwrap();
        let mut floats = vec![0f32; 100_003];
        rng::fill_uniform_f32(&mut floats, CounterRng::new(42, 3), 0).unwrap();
        let bits: Vec<u32> = floats.iter().map(|f| f.to_bits()).collect();
        let doubles: Vec<u64> = uniform(100_003, 42, 3, 0)
            .iter()
            .map(|f| f.to_bits())
            .collect();
        runs.push((ints, bits, doubles));
    }
    parallel::reset_num_threads();
    assert!(runs.windows(2).all(|w| w[0] == w[1]));
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_bits(
        seed: u64, stream: u32, n in 0usize..3000, chunk_len in 1usize..700,
    ) {
        let rng = CounterRng::new(seed, stream);
        let mut chunked = vec![0u64; n];
        parallel::fill_indexed(&mut chunked, 0, chunk_len, |i| rng.u64_at(i)).unwrap();
        let serial: Vec<u64> = (0..n as u64).map(|i| rng.u64_at(i)).collect();
        prop_assert_eq!(chunked, serial);
    }

    #[test]
    fn lane_batched_fills_equal_the_scalar_element_functions(
        seed: u64, stream: u32, n in 0usize..100, offset in 0u64..u64::MAX - 200,
        low in -50i64..50, span in 1i64..(1 << 40),
    ) {
        let rng = CounterRng::new(seed, stream);
        let mut f64s = vec![0f64; n];
        rng::fill_uniform_f64(&mut f64s, rng, offset).unwrap();
        let mut f32s = vec![0f32; n];
        rng::fill_uniform_f32(&mut f32s, rng, offset).unwrap();
        let mut ints = vec![0i64; n];
        rng::fill_integers(&mut ints, low, low + span, rng, offset).unwrap();
        for i in 0..n {
            let index = offset + i as u64;
            prop_assert_eq!(f64s[i].to_bits(), rng.f64_at(index).to_bits());
            prop_assert_eq!(f32s[i].to_bits(), rng.f32_at(index).to_bits());
            prop_assert_eq!(ints[i], low + rng.below_at(index, span as u64) as i64);
        }
    }

    #[test]
    fn a_slice_of_a_stream_is_the_stream_at_an_offset(
        seed: u64, n in 1usize..2000, cut in 0usize..2000,
    ) {
        let cut = cut % n;
        let whole = uniform(n, seed, 0, 0);
        let mut parts = uniform(cut, seed, 0, 0);
        parts.extend(uniform(n - cut, seed, 0, cut as u64));
        prop_assert_eq!(whole, parts);
    }

    #[test]
    fn uniforms_lie_in_unit_interval_and_integers_in_range(
        seed: u64, low in -1000i64..1000, span in 1i64..5000,
    ) {
        for u in uniform(500, seed, 1, 0) {
            prop_assert!((0.0..1.0).contains(&u));
        }
        let mut ints = vec![0i64; 500];
        rng::fill_integers(&mut ints, low, low + span, CounterRng::new(seed, 1), 0).unwrap();
        prop_assert!(ints.iter().all(|&v| v >= low && v < low + span));
    }

    #[test]
    fn streams_and_seeds_are_independent(seed: u64) {
        let a = CounterRng::new(seed, 0);
        let b = CounterRng::new(seed, 1);
        let c = CounterRng::new(seed.wrapping_add(1), 0);
        let first: Vec<u64> = (0..8).map(|i| a.u64_at(i)).collect();
        prop_assert_ne!(&first, &(0..8).map(|i| b.u64_at(i)).collect::<Vec<_>>());
        prop_assert_ne!(&first, &(0..8).map(|i| c.u64_at(i)).collect::<Vec<_>>());
    }
}

#[test]
fn integers_are_uniform_by_chi_square() {
    // 6 bins, 60_000 draws: the chi-square statistic (5 dof) exceeds 20.5 with p < 0.001.
    let mut ints = vec![0i64; 60_000];
    rng::fill_integers(&mut ints, 0, 6, CounterRng::new(7, 0), 0).unwrap();
    let mut counts = [0f64; 6];
    for v in ints {
        counts[v as usize] += 1.0;
    }
    let chi2: f64 = counts
        .iter()
        .map(|c| (c - 10_000.0).powi(2) / 10_000.0)
        .sum();
    assert!(chi2 < 20.5, "chi2 = {chi2}");
}
