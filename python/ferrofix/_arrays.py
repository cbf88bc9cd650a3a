"""Numpy arrays in the form the native layer reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def native_byte_order(array: np.ndarray) -> np.ndarray:
    """``array`` in this machine's byte order: big-endian data (from a file or another
    machine) becomes the same values the native layer can read; anything else is returned
    as it is."""
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))
