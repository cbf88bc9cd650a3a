"""Masking forward processes: exact against the token-by-token Philox reference, statistics,
protection, determinism across thread counts, input types and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ferrofix import parallel, seeding
from ferrofix.errors import ConfigError, DtypeError, ShapeError
from ferrofix.noise import LogLinearSchedule, mask_tokens, uniform_corrupt
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import noise as reference

MASK_ID = 103


def ids_grid(rows: int, columns: int, dtype: type = np.int64) -> np.ndarray:
    return (np.arange(rows * columns) % 97 + 1).astype(dtype).reshape(rows, columns)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_mask_tokens_matches_the_reference_bit_for_bit(dtype: type) -> None:
    ids = ids_grid(3, 13, dtype)
    probs = np.linspace(0.05, 0.95, 3 * 13).reshape(3, 13)
    noised, mask = mask_tokens(ids, probs, MASK_ID, seed=2024, protect=[5, 6])
    expected_ids, expected_mask = reference.mask_tokens(ids, probs, MASK_ID, 2024, {5, 6})
    assert noised.dtype == dtype
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(noised, expected_ids)
    np.testing.assert_array_equal(mask, expected_mask)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("columns", [32, 33, 64, 95])
@pytest.mark.parametrize("kind", ["scalar", "per_row", "per_row_column"])
def test_whole_steps_and_tails_match_the_reference_bit_for_bit(
    dtype: type, columns: int, kind: str
) -> None:
    # Rows of 32 tokens and more go through the vectorised generator and selects; their
    # tails and the per-token path do not. Every path must give the reference's bits.
    rows = 3
    ids = ids_grid(rows, columns, dtype)
    per_row = np.array([0.0, 0.37, 1.0])  # the edges never and always replace
    prob = {"scalar": 0.37, "per_row": per_row, "per_row_column": per_row[:, None]}[kind]
    grid = np.broadcast_to(np.reshape(prob, (-1, 1)), (rows, columns))
    noised, mask = mask_tokens(ids, prob, MASK_ID, seed=99)
    expected_ids, expected_mask = reference.mask_tokens(ids, grid, MASK_ID, 99, set())
    np.testing.assert_array_equal(noised, expected_ids)
    np.testing.assert_array_equal(mask, expected_mask)
    # Protection by id and by position clears decisions inside whole steps too.
    positions = np.zeros(ids.shape, bool)
    positions[:, ::3] = True
    noised, mask = mask_tokens(ids, prob, MASK_ID, seed=99, protect=[5, 6])
    expected_ids, expected_mask = reference.mask_tokens(ids, grid, MASK_ID, 99, {5, 6})
    np.testing.assert_array_equal(noised, expected_ids)
    np.testing.assert_array_equal(mask, expected_mask)
    noised, mask = mask_tokens(ids, prob, MASK_ID, seed=99, protect=positions)
    np.testing.assert_array_equal(mask, expected_mask_without(positions, grid, ids))
    np.testing.assert_array_equal(noised, np.where(mask, MASK_ID, ids))


def expected_mask_without(protected: np.ndarray, grid: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The reference's decisions with the protected positions cleared."""
    _, decided = reference.mask_tokens(ids, grid, MASK_ID, 99, set())
    return decided & ~protected


def test_uniform_corrupt_matches_the_reference_bit_for_bit() -> None:
    ids = ids_grid(2, 11)
    probs = np.full((2, 11), 0.6)
    corrupted, resampled = uniform_corrupt(ids, 0.6, 50, seed=7)
    expected_ids, expected_mask = reference.uniform_corrupt(ids, probs, 50, 7)
    np.testing.assert_array_equal(corrupted, expected_ids)
    np.testing.assert_array_equal(resampled, expected_mask)


@pytest.mark.parametrize(
    ("dtype", "vocab_size"),
    # 3 * 2**61 rejects a quarter of the candidates, so some draws need a second block.
    [(np.int32, 50_000), (np.int64, 3 * 2**61)],
)
def test_uniform_corrupt_matches_the_reference_for_sparse_and_dense_steps(
    dtype, vocab_size
) -> None:
    """Rows from rarely to nearly always replaced: steps with few replacements draw token by
    token, dense ones all 32 at once; both give the reference's ids."""
    rows, length = 5, 75  # two full steps of 32 and a partial one
    ids = ids_grid(rows, length, dtype)
    p = np.array([0.02, 0.1, 0.3, 0.7, 1.0])
    corrupted, resampled = uniform_corrupt(ids, p, vocab_size, seed=11)
    probs = np.repeat(p[:, None], length, axis=1)
    expected_ids, expected_mask = reference.uniform_corrupt(ids, probs, vocab_size, 11)
    np.testing.assert_array_equal(corrupted, expected_ids)
    np.testing.assert_array_equal(resampled, expected_mask)


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 0.9, 0.99])
def test_masked_fraction_per_row_within_4_sigma(p: float) -> None:
    rows, length = 16, 4096
    _, mask = mask_tokens(ids_grid(rows, length), p, MASK_ID, seed=31)
    sigma = np.sqrt(p * (1 - p) / length)
    assert np.all(np.abs(mask.mean(axis=1) - p) <= 4 * sigma)


def test_per_row_probabilities_from_a_schedule() -> None:
    schedule = LogLinearSchedule()
    t = np.array([0.1, 0.5, 0.9])
    p = schedule.mask_probability(t)
    _, mask = mask_tokens(ids_grid(3, 4096), p, MASK_ID, seed=3)
    sigma = np.sqrt(p * (1 - p) / 4096)
    assert np.all(np.abs(mask.mean(axis=1) - p) <= 4 * sigma)
    _, column = mask_tokens(ids_grid(3, 4096), p[:, None], MASK_ID, seed=3)
    np.testing.assert_array_equal(column, mask)


def test_uniform_corruption_draws_every_id_evenly() -> None:
    vocab = 10
    corrupted, resampled = uniform_corrupt(ids_grid(8, 4096), 1.0, vocab, seed=5)
    assert resampled.all()
    counts = np.bincount(corrupted.ravel(), minlength=vocab)
    expected = corrupted.size / vocab
    assert np.all(np.abs(counts - expected) <= 4 * np.sqrt(expected * (1 - 1 / vocab)))


def test_probability_zero_masks_nothing_and_one_masks_all_unprotected() -> None:
    ids = ids_grid(4, 64)
    noised, mask = mask_tokens(ids, 0.0, MASK_ID, seed=1)
    assert not mask.any()
    assert np.array_equal(noised, ids)
    protect = np.zeros(ids.shape, bool)
    protect[:, :3] = True
    noised, mask = mask_tokens(ids, 1.0, MASK_ID, seed=1, protect=protect)
    np.testing.assert_array_equal(mask, ~protect)
    np.testing.assert_array_equal(noised, np.where(protect, ids, MASK_ID))


@pytest.mark.parametrize("process", ["mask", "uniform"])
def test_protected_ids_are_never_touched(process: str) -> None:
    ids = ids_grid(8, 512)
    protected = [1, 2, 50]
    if process == "mask":
        out, flags = mask_tokens(ids, 0.9, MASK_ID, seed=4, protect=protected)
    else:
        out, flags = uniform_corrupt(ids, 0.9, 97, seed=4, protect=set(protected))
    keep = np.isin(ids, protected)
    assert keep.any()
    assert not flags[keep].any()
    np.testing.assert_array_equal(out[keep], ids[keep])


@pytest.mark.parametrize("process", [mask_tokens, uniform_corrupt])
def test_bit_identical_for_1_2_and_8_threads(process) -> None:
    ids = ids_grid(37, 1001)
    p = np.linspace(0, 1, 37)
    results = []
    try:
        for threads in (1, 2, 8):
            parallel.set_num_threads(threads)
            results.append(process(ids, p, 1000, seed=123))
    finally:
        parallel.set_num_threads(None)
    for out, flags in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(flags, results[0][1])


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 4),
    short=st.integers(0, 40),
    extra=st.integers(0, 40),
    seed=st.integers(0, 2**64 - 1),
)
def test_decisions_depend_only_on_seed_row_and_position(
    rows: int, short: int, extra: int, seed: int
) -> None:
    """A longer batch keeps the decisions of its prefix: nothing depends on the length."""
    long_ids = ids_grid(rows, short + extra)
    _, long_mask = mask_tokens(long_ids, 0.5, MASK_ID, seed=seed)
    _, short_mask = mask_tokens(long_ids[:, :short].copy(), 0.5, MASK_ID, seed=seed)
    np.testing.assert_array_equal(long_mask[:, :short], short_mask)


def test_torch_in_torch_out_and_one_dimensional_ids() -> None:
    ids = torch.arange(1, 65, dtype=torch.int32).reshape(2, 32)
    noised, mask = mask_tokens(ids, torch.tensor([0.3, 0.7]), MASK_ID, seed=9)
    assert noised.dtype == torch.int32
    assert mask.dtype == torch.bool
    expected, expected_mask = mask_tokens(ids.numpy(), np.array([0.3, 0.7]), MASK_ID, seed=9)
    np.testing.assert_array_equal(noised.numpy(), expected)
    np.testing.assert_array_equal(mask.numpy(), expected_mask)
    # Big-endian ids (read from a file, say): the same values, the same decisions.
    for process, value in ((mask_tokens, MASK_ID), (uniform_corrupt, 100)):
        native = process(ids.numpy().astype(np.int64), 0.5, value, seed=3)
        swapped = process(ids.numpy().astype(">i8"), 0.5, value, seed=3)
        for a, b in zip(native, swapped, strict=True):
            np.testing.assert_array_equal(a, b)
    single, single_mask = mask_tokens([5, 6, 7, 8], 1.0, MASK_ID, seed=0)
    assert single.tolist() == [MASK_ID] * 4
    assert single_mask.all()


def test_seed_none_uses_the_current_seed() -> None:
    ids = ids_grid(2, 100)
    seeding.reseed(77)
    np.testing.assert_array_equal(
        mask_tokens(ids, 0.5, MASK_ID)[1], mask_tokens(ids, 0.5, MASK_ID, seed=77)[1]
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda ids: mask_tokens(ids, -0.1, 0, seed=0),
            ConfigError,
            "mask_prob: must be in [0, 1], got -0.1 at index 0",
        ),
        (
            lambda ids: mask_tokens(ids, np.array([0.5, 1.5]), 0, seed=0),
            ConfigError,
            "mask_prob: must be in [0, 1], got 1.5 at index 1",
        ),
        (
            lambda ids: mask_tokens(ids, np.nan, 0, seed=0),
            ConfigError,
            "mask_prob: must be in [0, 1], got NaN at index 0",
        ),
        (
            lambda ids: mask_tokens(ids, np.full(3, 0.5), 0, seed=0),
            ShapeError,
            "mask_prob: expected shape a scalar, (B,) or (B, 1) with B = 2 rows, "
            "or the ids' shape [2, 5], got [3]",
        ),
        (
            lambda ids: mask_tokens(ids, np.full((2, 2), 0.5), 0, seed=0),
            ShapeError,
            "mask_prob: expected shape a scalar, (B,) or (B, 1) with B = 2 rows, "
            "or the ids' shape [2, 5], got [2, 2]",
        ),
        (
            lambda ids: mask_tokens(ids.astype(np.int32), 0.5, 2**31, seed=0),
            ConfigError,
            "mask_token_id: must fit the ids' dtype int32 [-2147483648, 2147483647], "
            "got 2147483648",
        ),
        (
            lambda ids: mask_tokens(ids, 0.5, 2**200, seed=0),
            ConfigError,
            f"mask_token_id: must fit the ids' dtype, got {2**200}",
        ),
        (
            lambda ids: mask_tokens(ids, 0.5, 1.5, seed=0),
            ConfigError,
            "mask_token_id: must be an integer, got 1.5",
        ),
        (
            lambda ids: mask_tokens(ids.astype(np.float32), 0.5, 0, seed=0),
            DtypeError,
            "mask_tokens does not support dtype float32; supported: int32, int64",
        ),
        (
            lambda ids: mask_tokens(np.array([[7, 2**63]], np.uint64), 0.5, 0, seed=0),
            ConfigError,
            "input_ids: id 9223372036854775808 is past int64, so no token has it",
        ),
        (
            lambda ids: mask_tokens(ids, 0.5, 0, seed=-1),
            ConfigError,
            "seed: must be in [0, 2**64), got -1",
        ),
        # numpy reads [7, True] as [7, 1]: a bool among ids is refused by position.
        (
            lambda ids: mask_tokens([[7, 8], [9, True]], 0.5, 0, seed=0),
            DtypeError,
            "input_ids[1][1]: must be an integer, got a bool",
        ),
        (
            lambda ids: mask_tokens(ids, 0.5, 0, seed=0, protect=[3, True]),
            DtypeError,
            "protect[1]: must be an integer, got a bool",
        ),
        (
            lambda ids: mask_tokens(ids, "half", 0, seed=0),
            ConfigError,
            "mask_prob: must be a number or an array of numbers, got 'half'",
        ),
        # numpy would read these as 0.5 and 1.0.
        (
            lambda ids: mask_tokens(ids, "0.5", 0, seed=0),
            ConfigError,
            "mask_prob: must be a number or an array of numbers, got '0.5'",
        ),
        (
            lambda ids: mask_tokens(ids, np.ones(2, bool), 0, seed=0),
            ConfigError,
            "mask_prob: must be a number or an array of numbers, got array([ True,  True])",
        ),
        (
            lambda ids: mask_tokens(ids, torch.tensor([True, False]), 0, seed=0),
            ConfigError,
            "mask_prob: must be a number or an array of numbers, got tensor([ True, False])",
        ),
        (
            lambda ids: mask_tokens(ids, 0.5, 0, seed=0, protect=np.zeros((2, 4), bool)),
            ShapeError,
            "protect: expected shape [2, 5] (the ids' shape), got [2, 4]",
        ),
        (
            lambda ids: mask_tokens(ids, 0.5, 0, seed=0, protect=[0.5]),
            ConfigError,
            "protect: must be a boolean array shaped like input_ids or a list of token ids, "
            "got list of dtype float64",
        ),
        (
            lambda ids: uniform_corrupt(ids, 0.5, 0, seed=0),
            ConfigError,
            "vocab_size: must be in [1, 9223372036854775808] for int64 ids, got 0",
        ),
        (
            lambda ids: uniform_corrupt(ids.astype(np.int32), 0.5, 2**31 + 1, seed=0),
            ConfigError,
            "vocab_size: must be in [1, 2147483648] for int32 ids, got 2147483649",
        ),
        (
            lambda ids: uniform_corrupt(ids, 2.0, 10, seed=0),
            ConfigError,
            "corrupt_prob: must be in [0, 1], got 2 at index 0",
        ),
    ],
)
def test_bad_inputs(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        call(ids_grid(2, 5))
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("dtype", "returned"),
    [
        (np.int8, np.int32),
        (np.uint8, np.int32),
        (np.int16, np.int32),
        (np.uint16, np.int32),
        (np.uint32, np.int64),
        (np.uint64, np.int64),
    ],
)
def test_other_integer_ids_mask_like_int64(dtype, returned) -> None:
    """Datasets store ids as uint16 or uint32 (vocabularies past 65,535); any integer type
    masks and corrupts the same tokens as int64 ids, in a dtype that holds every id."""
    ids = np.arange(7, 7 + 2 * 40).reshape(2, 40) % 120
    want_ids, want_mask = mask_tokens(ids, 0.4, 2, seed=5)
    got_ids, got_mask = mask_tokens(ids.astype(dtype), 0.4, 2, seed=5)
    assert got_ids.dtype == returned
    assert np.array_equal(got_ids, want_ids)
    assert np.array_equal(got_mask, want_mask)
    want = uniform_corrupt(ids, 0.4, vocab_size=120, seed=5)
    got = uniform_corrupt(ids.astype(dtype), 0.4, vocab_size=120, seed=5)
    assert got[0].dtype == returned
    assert np.array_equal(got[0], want[0])
    assert np.array_equal(got[1], want[1])
    try:  # torch before 2.3 has no uint16, uint32 or uint64 tensors
        tensor = torch.from_numpy(ids.astype(dtype))
    except TypeError:
        return
    got = uniform_corrupt(tensor, 0.4, vocab_size=120, seed=5)
    assert got[0].dtype == getattr(torch, np.dtype(returned).name)
    assert np.array_equal(got[0].numpy(), want[0])
