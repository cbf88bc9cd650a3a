"""Ids, lengths and labels given as Python lists: the native readers and ``as_array``, which
refuses a bool among ints (numpy reads ``[3, True]`` as ``[3, 1]``)."""

from __future__ import annotations

import numpy as np
import pytest
from ferrofix._arrays import as_array
from ferrofix._native import core
from ferrofix.errors import DtypeError
from hypothesis import given
from hypothesis import strategies as st

INT64 = st.integers(-(2**63), 2**63 - 1)


@given(st.lists(INT64, max_size=50))
def test_a_list_of_ints_reads_as_numpy_reads_it(values: list[int]) -> None:
    array = core().int_list_array(values)
    assert array.dtype == np.int64
    np.testing.assert_array_equal(array, np.array(values, dtype=np.int64))


@given(st.lists(st.lists(INT64, max_size=8), max_size=8))
def test_lists_of_ints_flatten_into_tokens_and_lengths(rows: list[list[int]]) -> None:
    flat, lengths = core().flatten_int_lists(rows)
    assert flat.dtype == lengths.dtype == np.int64
    assert flat.tolist() == [v for row in rows for v in row]
    assert lengths.tolist() == [len(row) for row in rows]


@pytest.mark.parametrize(
    "items",
    [
        [1, True],  # bool is an int subclass, not an id
        [1, np.int64(2)],
        [1, 2.0],
        [2**63],
        [-(2**63) - 1],
        [[1, 2]],  # nested: numpy's general path handles shapes
        [1, None],
    ],
)
def test_the_native_readers_decline_what_they_cannot_convert(items: list) -> None:
    # None sends the caller to numpy, which converts or says what is wrong.
    assert core().int_list_array(items) is None
    assert core().flatten_int_lists([[5], items]) is None
    assert core().flatten_int_lists([[5], tuple(items)]) is None


@given(
    st.lists(st.lists(st.integers(0, 9), min_size=3, max_size=3), min_size=1, max_size=4),
    st.data(),
)
def test_as_array_names_the_first_bool_among_ints(rows: list[list[int]], data) -> None:
    row = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.integers(0, 2))
    flag = data.draw(st.sampled_from([True, False, np.True_, np.False_]))
    rows[row][column] = flag
    # Any bool after the first one is not the one named.
    for later in range(row + 1, len(rows)):
        rows[later][0] = True
    with pytest.raises(DtypeError) as raised:
        as_array("ids", rows)
    assert str(raised.value) == f"ids[{row}][{column}]: must be an integer, got a bool"
    with pytest.raises(DtypeError):
        as_array("ids", tuple(tuple(r) for r in rows))


def test_as_array_leaves_what_holds_no_bool_among_ints_to_its_caller() -> None:
    # Only bools mixed into integer lists are refused here; the caller checks dtypes.
    assert as_array("ids", [True, False]).dtype == np.bool_
    assert as_array("ids", [1.0, True]).dtype == np.float64
    assert as_array("ids", []).size == 0
    mask = np.array([True, False])
    assert as_array("ids", mask) is mask
    np.testing.assert_array_equal(as_array("ids", [np.int32(3), 4]), [3, 4])
    np.testing.assert_array_equal(as_array("ids", ((1, 2), (3, 4))), [[1, 2], [3, 4]])
