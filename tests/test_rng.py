"""ferrofix.rng against the pure-Python Philox reference, plus determinism properties."""

from __future__ import annotations

import ferrofix
import numpy as np
import pytest
from ferrofix import rng
from ferrofix.errors import ConfigError, DtypeError
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import philox
from tests.reference.memory import beyond_memory

SEEDS = [0, 1, 42, 2**32 + 5, 2**64 - 1]


def test_philox_reference_matches_published_known_answer() -> None:
    # Random123 kat_vectors, philox4x32_10, counter and key all zero.
    assert philox.philox4x32_10([0, 0, 0, 0], [0, 0]) == [
        0x6627E8D5,
        0xE169C58D,
        0xBC57AC4C,
        0x9B00DBD8,
    ]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("stream", [0, 3, 2**32 - 1])
def test_uniform_matches_reference_bit_for_bit(seed: int, stream: int) -> None:
    got64 = rng.uniform(37, seed, stream)
    got32 = rng.uniform(37, seed, stream, dtype="float32")
    assert got64.dtype == np.float64
    assert got32.dtype == np.float32
    assert got64.tolist() == [philox.uniform64(seed, stream, i) for i in range(37)]
    assert got32.tolist() == [philox.uniform32(seed, stream, i) for i in range(37)]


@pytest.mark.parametrize(
    ("low", "high"), [(0, 1), (0, 10), (-5, 7), (0, 2**63 - 1), (-(2**63), 2**63 - 1)]
)
def test_integers_match_reference(low: int, high: int) -> None:
    got = rng.integers(low, high, (3, 7), seed=9, stream=2)
    assert got.dtype == np.int64
    assert got.shape == (3, 7)
    expected = [philox.integer(9, 2, i, low, high) for i in range(21)]
    assert got.ravel().tolist() == expected


def test_shapes_and_empty_outputs() -> None:
    assert rng.uniform((2, 3, 4), 0).shape == (2, 3, 4)
    assert rng.uniform((), 0).shape == ()
    assert rng.uniform((0, 5), 0).shape == (0, 5)
    assert rng.uniform(np.int64(4), 0).shape == (4,)
    assert rng.integers(0, 3, [2, np.int32(2)], 0).shape == (2, 2)


@given(
    seed=st.integers(0, 2**64 - 1),
    n=st.integers(1, 3000),
    cut=st.integers(0, 3000),
)
@settings(max_examples=50, deadline=None)
def test_any_chunking_of_a_stream_gives_the_same_bits(seed: int, n: int, cut: int) -> None:
    cut %= n
    whole = rng.uniform(n, seed)
    parts = np.concatenate([rng.uniform(cut, seed), rng.uniform(n - cut, seed, offset=cut)])
    assert whole.tobytes() == parts.tobytes()
    ints = rng.integers(-3, 1000, n, seed)
    int_parts = np.concatenate(
        [rng.integers(-3, 1000, cut, seed), rng.integers(-3, 1000, n - cut, seed, offset=cut)]
    )
    assert ints.tobytes() == int_parts.tobytes()


@given(
    low=st.integers(-(2**63), 2**63 - 2),
    span=st.integers(1, 2**64 - 1),
    seed=st.integers(0, 2**64 - 1),
    stream=st.integers(0, 2**32 - 1),
    offset=st.integers(0, 2**64 - 1),
    n=st.integers(1, 100),
)
@settings(max_examples=100, deadline=None)
def test_any_bounds_seed_stream_and_offset_match_the_reference(
    low: int, span: int, seed: int, stream: int, offset: int, n: int
) -> None:
    """Every lane alignment of the vector paths, offsets up to the stream's wrap, and bounds
    from one value to the whole int64 range, against the scalar reference."""
    high = min(low + span, 2**63 - 1)
    indices = [(offset + i) % 2**64 for i in range(n)]
    got = rng.integers(low, high, n, seed, stream, offset=offset)
    assert got.tolist() == [philox.integer(seed, stream, i, low, high) for i in indices]
    got64 = rng.uniform(n, seed, stream, offset=offset)
    assert got64.tolist() == [philox.uniform64(seed, stream, i) for i in indices]
    got32 = rng.uniform(n, seed, stream, offset=offset, dtype="float32")
    assert got32.tolist() == [philox.uniform32(seed, stream, i) for i in indices]


def test_stream_indices_wrap_modulo_2_to_the_64() -> None:
    tail = rng.uniform(10, 3, offset=2**64 - 5)
    assert tail[:5].tobytes() == rng.uniform(5, 3, offset=2**64 - 5).tobytes()
    assert tail[5:].tobytes() == rng.uniform(5, 3).tobytes()
    ints = rng.integers(0, 100, 4, 3, offset=2**64 - 2)
    assert ints[2:].tolist() == rng.integers(0, 100, 2, 3).tolist()


def test_bit_identical_for_1_2_and_8_threads() -> None:
    outputs = []
    try:
        for threads in (1, 2, 8):
            ferrofix.set_num_threads(threads)
            assert ferrofix.num_threads() == threads
            outputs.append(
                (
                    rng.uniform(200_003, 11, 1).tobytes(),
                    rng.uniform(200_003, 11, 1, dtype="float32").tobytes(),
                    rng.integers(0, 1_000_003, 200_003, 11, 1).tobytes(),
                )
            )
    finally:
        ferrofix.set_num_threads(None)
    assert outputs[0] == outputs[1] == outputs[2]


def test_seed_none_uses_the_current_seed() -> None:
    from ferrofix import seeding

    seeding.reseed(1234)
    assert rng.uniform(8).tobytes() == rng.uniform(8, 1234).tobytes()


def test_distribution_is_uniform() -> None:
    u = rng.uniform(200_000, 5)
    assert u.min() >= 0.0
    assert u.max() < 1.0
    # Mean of U(0,1) has sd 1/sqrt(12 n) ~ 6.5e-4 here: 5 sd bounds fail with p < 1e-6.
    assert abs(u.mean() - 0.5) < 5 * (1 / np.sqrt(12 * 200_000))
    counts = np.bincount(rng.integers(0, 10, 100_000, 5), minlength=10)
    chi2 = ((counts - 10_000) ** 2 / 10_000).sum()
    assert chi2 < 27.9  # chi-square, 9 dof, p = 0.001


BAD_INPUTS = [
    (lambda: rng.uniform(3, 2**200), ConfigError, f"seed: must be in [0, 2**64), got {2**200}"),
    (
        lambda: rng.uniform(3, 0, offset=-(2**130)),
        ConfigError,
        f"offset: must be in [0, 2**64), got {-(2**130)}",
    ),
    (lambda: rng.uniform(-1, 0), ConfigError, "shape: dimensions must be non-negative, got -1"),
    (
        lambda: rng.uniform("ab", 0),
        ConfigError,
        "shape: must be an int or a sequence of ints, got 'ab'",
    ),
    (
        lambda: rng.uniform((2.5,), 0),
        ConfigError,
        "shape: must be an int or a sequence of ints, got (2.5,)",
    ),
    (lambda: rng.uniform(3, -1), ConfigError, "seed: must be in [0, 2**64), got -1"),
    (
        lambda: rng.uniform(3, 2**64),
        ConfigError,
        "seed: must be in [0, 2**64), got 18446744073709551616",
    ),
    (lambda: rng.uniform(3, 1.5), ConfigError, "seed: must be an integer, got 1.5"),
    (lambda: rng.uniform(3, True), ConfigError, "seed: must be an integer, got True"),
    (lambda: rng.uniform(3, 0, -1), ConfigError, "stream: must be in [0, 2**32), got -1"),
    (
        lambda: rng.uniform(3, 0, 2**32),
        ConfigError,
        "stream: must be in [0, 2**32), got 4294967296",
    ),
    (lambda: rng.uniform(3, 0, offset=-2), ConfigError, "offset: must be in [0, 2**64), got -2"),
    (
        lambda: rng.uniform(3, 0, dtype="int8"),
        DtypeError,
        "uniform does not support dtype int8; supported: float32, float64",
    ),
    (lambda: rng.integers(5, 5, 3, 0), ConfigError, "high: must be greater than low (5), got 5"),
    (lambda: rng.integers(5, 1, 3, 0), ConfigError, "high: must be greater than low (5), got 1"),
    (
        lambda: rng.integers(0, 2**63, 3, 0),
        ConfigError,
        "high: must fit in int64 [-2**63, 2**63), got 9223372036854775808",
    ),
    (lambda: rng.integers(0.5, 3, 3, 0), ConfigError, "low: must be an integer, got 0.5"),
    (
        lambda: rng.integers(0, 3, (2**40, 2**40), 0),
        ConfigError,
        "shape: must be non-negative integers whose product fits in memory, "
        "got [1099511627776, 1099511627776]",
    ),
    # Shapes past the machine's memory are refused before anything is allocated (a failed
    # allocation used to abort the process, and 2**62 float64s to panic on the byte count).
    (
        lambda: rng.uniform((2**20, 2**20), 0),
        ConfigError,
        "shape: an output array of shape [1048576, 1048576] would need "
        f"{beyond_memory('8192.0 GiB')}; ask for fewer elements",
    ),
    (
        lambda: rng.uniform(2**61, 0, dtype="float32"),
        ConfigError,
        "shape: an output array of shape [2305843009213693952] would need "
        f"{beyond_memory('8589934592.0 GiB')}; ask for fewer elements",
    ),
    (
        lambda: rng.integers(0, 3, 2**62, 0),
        ConfigError,
        "shape: an output array of shape [4611686018427387904] would need "
        f"{beyond_memory('more than 2**64 bytes')}; ask for fewer elements",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(call, error, message) -> None:
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
