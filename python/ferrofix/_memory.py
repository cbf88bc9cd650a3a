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


def check_outputs_fit(
    arg: str, shape: Sequence[int], itemsize: int, hint: str, *, arrays: int = 1
) -> None:
    """Raise ``ConfigError`` naming ``arg`` when ``arrays`` outputs of ``shape`` with
    ``itemsize`` bytes per element need more than this machine's physical memory.
    """
    total = arrays * itemsize
    for d in shape:
        total *= int(d)  # Python ints: a numpy scalar product could wrap
    if 0 <= total <= _ALWAYS_FITS:
        return
    dims = [min(int(d), _UNBOUNDED) for d in shape]
    reason = _native.core().outputs_shortfall_reason(arrays, dims, itemsize)
    if reason is not None:
        raise ConfigError(f"{arg}: {reason}; {hint}")
