"""Assertions: compare_tensors against the numpy reference (hypothesis, every dtype pair),
assert_close presets and messages, the model assertions, and the bad-input table."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch
from ferrofix import errors
from ferrofix.assertions import (
    assert_batch_independence,
    assert_can_overfit,
    assert_causal,
    assert_close,
    assert_deterministic,
    assert_finite,
    assert_gradients_flow,
    compare_tensors,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.reference import compare as reference

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.floats(-10, 10, width=32)


@settings(max_examples=200, deadline=None)
@given(
    pair=st.integers(0, 300).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float32, n, elements=FLOATS), hnp.arrays(np.float32, n, elements=FLOATS)
        )
    )
)
def test_compare_tensors_matches_numpy(pair) -> None:
    actual, expected = pair
    got = compare_tensors(actual, expected, rms_eps=1e-3)
    want = reference.compare(actual, expected, 1e-3)
    assert math.isclose(got.rms, want["rms"], rel_tol=1e-9, abs_tol=1e-300)
    assert math.isclose(got.scale, want["scale"], rel_tol=1e-9)
    assert got.max_abs == want["max_abs"]
    if actual.size:
        assert np.ravel_multi_index(got.max_index, actual.shape) == want["max_index"]
    assert got.non_finite == want["non_finite"]
    assert got.non_finite_mismatch == want["non_finite_mismatch"]


HUGE = st.floats(-1e300, 1e300) | st.sampled_from([0.0, 1.0, -2.5, np.nan, np.inf])


def _huge_pairs(n: int) -> st.SearchStrategy:
    """Independent arrays, or arrays equal where a mask says and free (often tiny)
    elsewhere: huge equal values beside tiny differences are what the rescaled sums must
    get right."""
    arrays = hnp.arrays(np.float64, n, elements=HUGE)
    independent = st.tuples(arrays, arrays)
    free = hnp.arrays(np.float64, n, elements=HUGE | st.floats(-1e-150, 1e-150))
    partly_equal = st.tuples(arrays, free, free, hnp.arrays(np.bool_, n)).map(
        lambda t: (np.where(t[3], t[0], t[1]), np.where(t[3], t[0], t[2]))
    )
    return independent | partly_equal


@settings(max_examples=300, deadline=None)
@given(pair=st.integers(0, 40).flatmap(_huge_pairs), rms_eps=st.sampled_from([0.0, 1e-4]))
def test_float64_of_any_magnitude_matches_numpy(pair, rms_eps: float) -> None:
    """Squares of values past ~1e154 overflow f64: the RMS and scale must not."""
    actual, expected = pair
    got = compare_tensors(actual, expected, rms_eps=rms_eps)
    want = reference.compare(actual, expected, rms_eps)
    assert math.isclose(got.rms, want["rms"], rel_tol=1e-12, abs_tol=1e-300)
    assert math.isclose(got.scale, want["scale"], rel_tol=1e-12, abs_tol=1e-300)
    assert got.max_abs == want["max_abs"]


@pytest.mark.parametrize(
    ("actual", "expected", "passes"),
    [
        ([1e200], [2e200], False),  # passed before: inf RMS over an inf scale judged nothing
        ([1e200, 0.0], [1e200, 1e199], False),
        ([1e200, 3e250], [1e200 * (1 + 1e-12), 3e250], True),
        ([0.0, 0.0], [0.0, 0.0], True),  # zero scale (rms_eps=0 below): no ZeroDivisionError
        # A tiny difference is summed scaled up: the huge equal values beside it must not
        # be (inf - inf made the RMS NaN, a failure).
        ([1e200, 1e-200, -1.7e308], [1e200, 0.0, -1.7e308], True),
        ([1.0, 0.0], [0.0, 0.0], False),
    ],
)
def test_extreme_magnitudes_are_judged(actual, expected, passes: bool) -> None:
    check = lambda: assert_close(np.array(actual), np.array(expected), rms_eps=0.0)  # noqa: E731
    if passes:
        check()
    else:
        with pytest.raises(AssertionError, match="tensors differ"):
            check()


DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("actual_dtype", DTYPES)
@pytest.mark.parametrize("expected_dtype", DTYPES)
def test_every_dtype_pair_reads_the_exact_values(actual_dtype, expected_dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(3, 70_001, generator=gen)  # several chunks, odd length
    actual, expected = base.to(actual_dtype), (base * 1.01).to(expected_dtype)
    got = compare_tensors(actual, expected)
    want = reference.compare(actual.double().numpy(), expected.double().numpy(), 1e-4)
    assert math.isclose(got.rms, want["rms"], rel_tol=1e-9)
    assert got.max_abs == want["max_abs"]
    assert np.ravel_multi_index(got.max_index, (3, 70_001)) == want["max_index"]


def test_hand_computed_case() -> None:
    got = compare_tensors(np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert got.rms == 0.5
    assert got.max_abs == 1.0
    assert got.max_index == (1, 1)
    assert got.scale == math.sqrt((1 + 4 + 9 + 16) / 4 + 1e-8)
    assert got.numel == 4


def test_presets_pass_rounding_noise_and_fail_real_differences() -> None:
    x = torch.randn(64, 64, generator=torch.Generator().manual_seed(1))
    assert_close(x.float(), x.double())
    assert_close(x.bfloat16(), x, preset="bf16")
    with pytest.raises(AssertionError):
        assert_close(x.bfloat16(), x)  # bf16 rounding is far above the fp32 tolerances
    assert_close(x.bfloat16(), x, compare_factor=100)
    assert_close(x.half(), x, preset="fp16")


def test_a_metric_fails_only_above_both_its_tolerances() -> None:
    big = np.full(100, 1000.0)
    assert_close(big + 0.05, big)  # abs 0.05 > 1e-4 but relative 5e-5 < 1e-3
    tiny = np.full(100, 1e-6)
    assert_close(tiny + 5e-5, tiny)  # relative huge, absolute 5e-5 < 1e-4


def test_failure_message_lists_metrics_and_worst_elements() -> None:
    expected = np.zeros((2, 3))
    actual = expected.copy()
    actual[1, 2] = 0.5
    with pytest.raises(AssertionError) as info:
        assert_close(actual, expected)
    message = str(info.value)
    assert message.startswith("tensors differ (shape (2, 3), scale 1.000e-04, compare_factor 1.0):")
    assert (
        "- rms difference 2.041e-01 (relative 2.041e+03) exceeds abs 1.000e-04 and rel 1.000e-03"
        in message
    )
    assert "- max difference 5.000e-01" in message
    assert "  at (1, 2): actual 0.5, expected 0.0" in message


def test_non_finite_mismatches_fail_and_matching_ones_pass() -> None:
    assert_close(np.array([np.nan, np.inf, 1.0]), np.array([np.nan, np.inf, 1.0]))
    with pytest.raises(AssertionError, match="1 positions are NaN/inf on one side only"):
        assert_close(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))


@pytest.mark.parametrize(
    ("actual", "expected", "shown"),
    [
        # Within the fp32 preset's relative tolerance as floats, but different token ids.
        (torch.tensor([[50000, 7]]), torch.tensor([[50010, 7]]), "at (0, 0): actual 50000"),
        # Equal once read as float64; not equal as integers.
        (np.array([2**62 + 1]), np.array([2**62]), "actual 4611686018427387905"),
        (np.array([True, False]), torch.tensor([True, True]), "at (1,): actual False"),
        ([1, 2, 3], [1, 2, 4], "at (2,): actual 3, expected 4"),
    ],
)
def test_integer_data_is_compared_exactly_unless_a_tolerance_is_given(
    actual, expected, shown
) -> None:
    with pytest.raises(AssertionError) as raised:
        assert_close(actual, expected)
    message = str(raised.value)
    assert message.startswith("integer tensors differ")
    assert "1 of " in message
    assert shown in message
    assert_close(actual, actual)
    # An explicit tolerance is a request for the float comparison.
    assert_close(np.array([1000]), np.array([1001]), rms_rel=1e-2, max_rel=1e-2)


def test_integers_against_floats_use_the_tolerances() -> None:
    assert_close(np.array([1, 2]), np.array([1.0, 2.00001]))
    with pytest.raises(AssertionError, match="tensors differ"):
        assert_close(np.array([1, 2]), np.array([1.0, 2.5]))


def test_cuda_free_torch_and_lists_work() -> None:
    assert compare_tensors([1.0, 2.0], torch.tensor([1.0, 2.0])).rms == 0.0
    assert compare_tensors(np.arange(3), np.arange(3)).max_abs == 0.0


# --- model assertions ---------------------------------------------------------------------


def test_assert_finite() -> None:
    assert_finite(torch.ones(3))
    with pytest.raises(
        AssertionError, match=r"logits has 2 non-finite values of 4; first at \(0, 1\)"
    ):
        assert_finite(np.array([[0, np.nan], [np.inf, 1]]), "logits")
    # An infinite imaginary part is not finite either (a float64 cast would drop it).
    with pytest.raises(AssertionError, match=r"x has 1 non-finite values of 2; first at \(1,\)"):
        assert_finite(np.array([1, 1j * np.inf]), "x")
    with pytest.raises(AssertionError, match="1 non-finite values of 3"):
        assert_finite(torch.tensor([1.0, float("nan"), 2.0], dtype=torch.bfloat16))
    assert_finite(np.arange(3))  # integers are always finite


def test_big_endian_data_compares_by_value() -> None:
    expected = np.array([1.0, 2.0, 4.0])
    swapped = expected.astype(">f8")
    assert compare_tensors(swapped, expected).max_abs == 0.0
    off = compare_tensors(expected + 1, swapped.astype(">f4"))
    assert off.max_abs == 1.0
    assert_close(swapped, expected, preset="fp32")


def test_assert_gradients_flow_names_the_dead_parameters() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    assert_gradients_flow(model, model(torch.randn(2, 4)).sum())
    frozen_out = model[0](torch.randn(2, 4)).sum()  # the second layer is unused
    with pytest.raises(AssertionError, match=r"2 parameters got no gradient.*: 1\.weight, 1\.bias"):
        assert_gradients_flow(model, frozen_out)


def test_assert_batch_independence() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    inputs = torch.randn(5, 4)
    assert_batch_independence(layer, inputs, index=2)
    with pytest.raises(AssertionError, match="row 1 changes with the rest of the batch"):
        assert_batch_independence(lambda x: x - x.mean(0), inputs, index=1)


def test_assert_causal() -> None:
    ids = torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1]])
    assert_causal(lambda x: x.float().cumsum(1), ids)
    with pytest.raises(AssertionError, match="not causal"):
        assert_causal(lambda x: x.float().flip(1).cumsum(1).flip(1), ids)


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(torch.tensor([[3, 9, 9], [0, 1, 9]]), id="the largest id last"),
        pytest.param(torch.zeros(2, 3, dtype=torch.long), id="all zeros"),
        pytest.param(np.array([[3, 9, 9]]), id="numpy"),
    ],
)
def test_assert_causal_changes_the_last_token_within_the_vocabulary(ids) -> None:
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(10, 4)
    seen = []

    def model(x):
        x = torch.as_tensor(x)
        seen.append(x.clone())
        return embedding(x).cumsum(1)  # raises IndexError on an id >= 10

    assert_causal(model, ids)
    before, after = seen
    assert (after[:, -1] != before[:, -1]).all()  # the check is not vacuous
    assert torch.equal(after[:, :-1], before[:, :-1])
    with pytest.raises(AssertionError, match="not causal"):
        assert_causal(lambda x: embedding(torch.as_tensor(x)).flip(1).cumsum(1), ids)


@dataclasses.dataclass
class _ModelOutput:
    """What a Hugging Face model returns, in miniature: logits beside other fields."""

    logits: torch.Tensor
    hidden: torch.Tensor


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda logits: {"logits": logits, "loss": None}, id="mapping"),
        pytest.param(lambda logits: _ModelOutput(logits, logits.flip(0)), id="attribute"),
    ],
)
def test_model_assertions_compare_the_logits_of_model_outputs(wrap) -> None:
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(10, 4)
    ids = torch.randint(0, 10, (3, 5))
    # `hidden` mixes the batch rows, so only the logits may be compared.
    assert_batch_independence(lambda x: wrap(embedding(x)), ids, index=1)
    assert_causal(lambda x: wrap(embedding(x).cumsum(1)), ids)
    with pytest.raises(AssertionError, match="row 1 changes with the rest of the batch"):
        assert_batch_independence(lambda x: wrap(embedding(x) - embedding(x).mean(0)), ids, 1)
    with pytest.raises(AssertionError, match="not causal"):
        assert_causal(lambda x: wrap(embedding(x).flip(1).cumsum(1)), ids)


@dataclasses.dataclass(slots=True)
class _Slotted:
    value: torch.Tensor


class _Cache:
    """An object with identity ==, holding tensors and a reference to itself (as KV caches
    and modules do)."""

    def __init__(self, value: torch.Tensor, extra: bool = False) -> None:
        self.layers = [{"key": value}]
        self.owner = self
        if extra:
            self.step = 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda v: _Slotted(v), r"result\.value differs at \(1,\)"),
        (lambda v: _ModelOutput(torch.ones(2), v), r"result\.hidden differs at \(1,\)"),
        (lambda v: _Cache(v), r"result\.layers\[0\]\['key'\] differs at \(1,\)"),
    ],
    ids=["slotted dataclass", "dataclass", "object"],
)
def test_assert_deterministic_compares_objects_field_by_field(make, message) -> None:
    assert_deterministic(lambda: make(torch.arange(3.0)))
    values = iter([torch.arange(3.0), torch.tensor([0.0, 5.0, 2.0])])
    with pytest.raises(AssertionError, match=f"two calls differ: {message}: 1.0 vs 5.0"):
        assert_deterministic(lambda: make(next(values)))


class _CountedLeaf:
    """Equal to any other leaf, counting the comparisons."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _CountedLeaf.compared += 1
        return True

    __hash__ = None  # type: ignore[assignment]


class _Shared:
    def __init__(self, child: object) -> None:
        self.left = child
        self.right = child  # the same object twice: 2**depth paths to the leaf


def test_assert_deterministic_compares_a_shared_object_once() -> None:
    def result() -> _Shared:
        node = _Shared(_CountedLeaf())
        for _ in range(16):
            node = _Shared(node)
        return node

    _CountedLeaf.compared = 0
    assert_deterministic(result)
    assert _CountedLeaf.compared == 1  # 2**17 when every path was walked


def test_assert_deterministic_names_attributes_only_one_result_has() -> None:
    extra = iter([False, True])
    with pytest.raises(
        AssertionError,
        match=r"result attributes \['layers', 'owner'\] vs \['layers', 'owner', 'step'\]",
    ):
        assert_deterministic(lambda: _Cache(torch.ones(1), next(extra)))


def test_assert_can_overfit(small_batch, tiny_model) -> None:
    def loss_fn(model, batch):
        inputs, labels = batch
        return torch.nn.functional.cross_entropy(model(inputs), labels)

    final = assert_can_overfit(tiny_model, small_batch, loss_fn, steps=200, lr=1e-2)
    assert final < 0.01
    frozen = torch.nn.Sequential(torch.nn.Linear(32, 4))
    with pytest.raises(AssertionError, match=r"could not overfit one batch: loss .* after 3 Adam"):
        assert_can_overfit(frozen, small_batch, loss_fn, steps=3)


def test_assert_deterministic() -> None:
    assert_deterministic(lambda x: {"a": x * 2, "b": [x.sum()]}, torch.ones(3))
    counter = iter(range(10))
    with pytest.raises(
        AssertionError, match=r"two calls differ: result\[0\] differs at \(0,\): 0 vs 1"
    ):
        assert_deterministic(lambda: (np.array([next(counter)]),))


def _first_then(first, then):
    calls = iter([first, then])
    return lambda: next(calls)


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        (torch.ones(2), np.ones(2), "result types Tensor vs ndarray"),
        # Same bytes, different numbers.
        (np.zeros(2, np.float32), np.zeros(2, np.int32), "result dtypes float32 vs int32"),
        (
            torch.zeros(1, dtype=torch.bfloat16),
            torch.zeros(1, dtype=torch.float16),
            "result dtypes torch.bfloat16 vs torch.float16",
        ),
        (np.array([0.0, 1.0]), np.array([-0.0, 1.0]), r"result differs at \(0,\): 0.0 vs -0.0"),
        (np.float32(1), np.float32(2), r"result differs at \(\): 1.0 vs 2.0"),
        (0.0, -0.0, "result: 0.0 vs -0.0"),
        (1, True, "result: 1 vs True"),
        (1, 1.0, "result: 1 vs 1.0"),
    ],
)
def test_assert_deterministic_is_bit_for_bit(first, then, message) -> None:
    with pytest.raises(AssertionError, match=f"two calls differ: {message}"):
        assert_deterministic(_first_then(first, then))


@pytest.mark.parametrize(
    "value",
    [float("nan"), np.float32("nan"), np.array([np.nan]), torch.tensor([float("nan")]), None],
)
def test_a_nan_is_deterministic_when_both_calls_give_it(value) -> None:
    assert_deterministic(lambda: value)


# --- bad input ----------------------------------------------------------------------------

BAD_INPUT = [
    (
        lambda: assert_gradients_flow(None, torch.zeros(())),
        errors.DtypeError,
        "model: expected a torch.nn.Module, got NoneType",
    ),
    (
        lambda: assert_batch_independence(lambda x: x, [1, 2]),
        errors.DtypeError,
        "inputs: expected a torch tensor or numpy array of a batch, got list",
    ),
    (
        lambda: assert_causal(lambda x: x, [[1, 2], [3, 4]]),
        errors.DtypeError,
        "input_ids: expected a torch tensor or numpy array of a batch, got list",
    ),
    (
        lambda: assert_can_overfit(torch.nn.Linear(1, 1), None, lambda m, b: m, lr=0),
        errors.ConfigError,
        r"lr: must be a finite number > 0, got 0.0",
    ),
    (
        lambda: compare_tensors([[1.0, 2.0], [3.0]], [1.0, 2.0]),
        errors.ShapeError,
        "expected: expected an array|actual: expected an array",
    ),
    (
        lambda: compare_tensors(np.zeros(3), np.zeros(4)),
        errors.ShapeError,
        r"actual: expected shape \(4,\)",
    ),
    (
        lambda: compare_tensors(np.zeros(3, complex), np.zeros(3)),
        errors.DtypeError,
        r"actual: compare_tensors supports .* got complex128; compare torch.view_as_real",
    ),
    (
        # torch's .double() would drop the imaginary part: refused, not compared.
        lambda: assert_close(torch.tensor([1 + 1j]), torch.tensor([1 + 2j])),
        errors.DtypeError,
        r"actual: compare_tensors supports .* got complex64",
    ),
    (
        lambda: assert_finite(np.array(["inf"]), "logits"),
        errors.DtypeError,
        "logits: assert_finite needs numbers, got dtype <U3",
    ),
    (
        lambda: compare_tensors(np.zeros(3), np.zeros(3), rms_eps=-1),
        errors.ConfigError,
        "rms_eps: must be a finite number >= 0",
    ),
    (
        lambda: assert_close(np.zeros(3), np.zeros(3), preset="fp8"),
        errors.ConfigError,
        "preset: must be one of 'fp32', 'bf16', 'fp16', None, got 'fp8'",
    ),
    (
        lambda: assert_close(np.zeros(3), np.zeros(3), preset=None),
        errors.ConfigError,
        "preset: with preset=None give at least one",
    ),
    (
        lambda: assert_close(np.zeros(3), np.zeros(3), rms_abs=-1.0),
        errors.ConfigError,
        "rms_abs: must be a number >= 0",
    ),
    (
        lambda: assert_close(np.zeros(3), np.zeros(3), compare_factor=0),
        errors.ConfigError,
        "compare_factor: must be a finite number > 0, got 0",
    ),
    (
        lambda: assert_close(np.zeros(3), np.ones(3), compare_factor=float("inf")),
        errors.ConfigError,
        "compare_factor: must be a finite number > 0, got inf",
    ),
    (
        lambda: assert_batch_independence(lambda x: x, np.zeros((2, 3)), index=5),
        errors.ConfigError,
        r"index: must be an integer in \[0, 1\], got 5",
    ),
    (
        lambda: assert_batch_independence(lambda x: x, np.zeros((2, 3)), index=1.0),
        errors.ConfigError,
        r"index: must be an integer in \[0, 1\], got 1.0",
    ),
    (
        lambda: assert_causal(lambda x: x, torch.zeros(3, dtype=torch.long)),
        errors.ShapeError,
        r"input_ids: expected shape \(B, L\) with L >= 2",
    ),
    (
        lambda: assert_can_overfit(torch.nn.Linear(1, 1), None, None, steps=0),
        errors.ConfigError,
        "steps: must be an integer >= 1",
    ),
    (
        lambda: assert_batch_independence(lambda x: (x, x), torch.zeros(2, 3)),
        errors.DtypeError,
        r"model_fn: expected it to return a torch tensor or numpy array \(or an output with "
        r"logits.*got tuple; pass a function that picks the tensor",
    ),
    (
        lambda: assert_causal(lambda x: {"loss": x.sum()}, torch.zeros(2, 3, dtype=torch.long)),
        errors.DtypeError,
        "model_fn: expected it to return a torch tensor .* got dict",
    ),
    (
        lambda: assert_batch_independence(lambda x: x.sum(), torch.zeros(2, 3)),
        errors.ShapeError,
        r"model_fn: expected an output of shape \(B, ...\) starting with the input's \(2,\), "
        r"got \(\)",
    ),
    (
        lambda: assert_causal(lambda x: x.T, torch.zeros(2, 3, dtype=torch.long)),
        errors.ShapeError,
        r"model_fn: expected an output of shape \(B, L, ...\) starting with the input's "
        r"\(2, 3\), got \(3, 2\)",
    ),
    (
        lambda: assert_deterministic(lambda: _Ambiguous()),
        errors.DtypeError,
        r"result: cannot compare two _Ambiguous values \(RuntimeError: Boolean value of Tensor",
    ),
]


class _Ambiguous:
    """== answers with a tensor, as pandas and torch objects do."""

    def __eq__(self, other: object) -> Any:
        return torch.ones(2) == 1

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize(("call", "error", "message"), BAD_INPUT)
def test_bad_input(call, error, message: str) -> None:
    with pytest.raises(error, match=message):
        call()
