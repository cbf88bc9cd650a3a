"""Numpy arrays in the form the native layer reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ferrofix import _native, _torch
from ferrofix.errors import DtypeError, ShapeError

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
    """``array`` as the native layer reads it, in C order and aligned to its item size,
    copied only when it is not. Unlike ``np.ascontiguousarray`` it keeps 0-d arrays 0-d and
    copies contiguous data at an odd address (``np.frombuffer`` at an offset, a memory map
    past an odd-sized header), and unlike ``np.require`` it costs nothing when there is
    nothing to do (``np.require`` takes ~2 us)."""
    flags = array.flags
    if flags.c_contiguous and flags.aligned:
        return array
    return array.copy(order="C")


def as_array(name: str, value: Any) -> np.ndarray:
    """``np.asarray(value)``, except that ids, lengths or labels given as Python lists may not
    mix bools with ints: numpy reads ``[True, 2]`` as ``[1, 2]``, which every later dtype
    check would then accept. A flat list of plain ints is read natively (faster than numpy,
    which discovers the dtype in a pass of its own)."""

    if type(value) is list:
        native = _native.core().int_list_array(value)
        if native is not None:
            return native
    array = rectangular(name, value)
    if array.dtype.kind in "iu" and isinstance(value, list | tuple):
        reject_bool_items(name, value)
    return array


def shape_of(name: str, value: Any) -> tuple[int, ...]:
    """The shape of a tensor, array or nested list, without copying the first two (a
    ragged list is the ShapeError of :func:`rectangular`)."""
    return tuple(value.shape) if hasattr(value, "shape") else rectangular(name, value).shape


def rectangular(name: str, value: Any) -> np.ndarray:
    """``np.asarray(value)``, with nested lists of different lengths (which numpy refuses
    with a bare ValueError about "an inhomogeneous shape") as a ShapeError naming ``name``,
    and tensors torch will not share while a negation is pending (``x.conj().imag``) read
    as the values they stand for, also inside lists."""
    import numpy as np

    try:
        return np.asarray(value)
    except ValueError:
        raise ShapeError(
            f"{name}: expected an array; got nested sequences of different lengths"
        ) from None
    except (RuntimeError, TypeError, NotImplementedError):  # what torch raises refusing .numpy()
        if _torch.is_tensor(value):
            return _torch.host_array(value, name)
        if isinstance(value, list | tuple):
            return rectangular(name, [rectangular(name, item) for item in value])
        raise


def reject_bool_items(name: str, value: list[Any] | tuple[Any, ...]) -> None:
    """Raise DtypeError naming the first bool (Python or numpy) in nested lists or tuples."""
    where = _first_bool(value)
    if where is not None:
        raise DtypeError(f"{name}{where}: must be an integer, got a bool")


def _first_bool(items: list[Any] | tuple[Any, ...]) -> str | None:
    """``[i][j]...`` of the first bool in row-major order, or None. Only called on lists
    numpy read as an integer array, so the nesting is as deep as that array."""
    import numpy as np

    for i, item in enumerate(items):
        if isinstance(item, bool | np.bool_):
            return f"[{i}]"
        if isinstance(item, list | tuple):
            inner = _first_bool(item)
            if inner is not None:
                return f"[{i}]{inner}"
    return None
