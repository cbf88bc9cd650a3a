"""Numpy arrays in the form the native layer reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

_dtype_names: dict[Any, str] = {}


def native_byte_order(array: np.ndarray) -> np.ndarray:
    """``array`` in this machine's byte order: big-endian data (from a file or another
    machine) becomes the same values the native layer can read; anything else is returned
    as it is."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def dtype_name(array: np.ndarray) -> str:
    """``array.dtype.name``, remembered per dtype: numpy builds the name in Python on every
    access (~4 us, most of a small call's cost)."""
    dtype = array.dtype
    name = _dtype_names.get(dtype)
    if name is None:
        name = _dtype_names[dtype] = dtype.name
    return name


def c_contiguous(array: np.ndarray) -> np.ndarray:
    """``array`` in C order, copied only when it is not. Unlike ``np.ascontiguousarray`` it
    keeps 0-d arrays 0-d, and unlike ``np.require`` it costs nothing when there is nothing
    to do (``np.require`` takes ~2 us)."""
    import numpy as np

    return array if array.flags.c_contiguous else np.ascontiguousarray(array)
