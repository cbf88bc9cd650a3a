"""Refusing outputs that cannot fit in memory, for the functions that allocate with numpy.

The native functions run the same check before they allocate; this is its entry point for
Python code whose output size comes from an argument (a length, a batch size), so an
impossible size is a ``ConfigError`` naming that argument instead of an allocation that
Linux grants and the OOM killer ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from ferrofix import _native
from ferrofix.errors import ConfigError

# Dims at least this large already overflow any byte count; capped so they convert.
_UNBOUNDED = 2**64
# Outputs up to this size fit any machine that runs Python and a test suite; checking them
# needs no call into the extension (small calls make such outputs on every batch).
_ALWAYS_FITS = 64 << 20
# numpy's largest array in bytes (its sizes are signed 64-bit).
_NUMPY_MAX_BYTES = 2**63 - 1


def check_outputs_fit(
    arg: str, shape: Sequence[int], itemsize: int, hint: str, *, arrays: int = 1
) -> None:
    """Raise ``ConfigError`` naming ``arg`` when ``arrays`` outputs of ``shape`` with
    ``itemsize`` bytes per element need more than this machine's physical memory.
    """
    total = arrays * itemsize
    for d in shape:
        total *= int(d)  # Python ints: a numpy scalar product could wrap
    if total == 0:
        _check_numpy_can_shape(arg, shape, itemsize, hint)
        return
    if 0 < total <= _ALWAYS_FITS:
        return
    dims = [min(int(d), _UNBOUNDED) for d in shape]
    reason = _native.core().outputs_shortfall_reason(arrays, dims, itemsize)
    if reason is not None:
        raise ConfigError(f"{arg}: {reason}; {hint}")


def _check_numpy_can_shape(arg: str, shape: Sequence[int], itemsize: int, hint: str) -> None:
    """numpy refuses a shape whose nonzero dimensions multiply past 2**63 bytes even when
    another dimension is 0 (``np.zeros((0, 2**40, 2**40))``): name ``arg`` instead."""
    span = itemsize
    for d in shape:
        span *= max(int(d), 1)
    if span > _NUMPY_MAX_BYTES:
        dims = ", ".join(str(int(d)) for d in shape)
        raise ConfigError(
            f"{arg}: numpy cannot shape an array as [{dims}] (its nonzero dimensions span "
            f"more than 2**63 bytes), even empty; {hint}"
        )
