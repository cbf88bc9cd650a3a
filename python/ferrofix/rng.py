"""Deterministic random arrays from ferrofix's counter-based generator (Philox4x32-10).

Element ``i`` of a result depends only on ``(seed, stream, offset + i)``: the same seed gives
the same bits on any machine, thread count or chunking, and
``uniform(n, seed, offset=k) == uniform(n + k, seed)[k:]``. Use different ``stream`` values
for independent draws from one seed. ``seed=None`` uses the current global seed (the
per-test seed under pytest, or what pytest-randomly / ``fixed_seed`` set).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ferrofix import _native, seeding
from ferrofix._args import integer
from ferrofix.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["integers", "uniform"]

Shape = int | Sequence[int]


def _shape(shape: Shape) -> list[int]:
    # The common cases (an int, a tuple or list of ints) without the Sequence check.
    if type(shape) is int and 0 <= shape < 2**63:
        return [shape]
    if type(shape) in (tuple, list) and all(type(d) is int and 0 <= d < 2**63 for d in shape):
        return list(shape)
    dims = list(shape) if isinstance(shape, Sequence) and not isinstance(shape, str) else [shape]
    try:
        checked = [integer("shape", dim) for dim in dims]
    except ConfigError:
        raise ConfigError(f"shape: must be an int or a sequence of ints, got {shape!r}") from None
    if any(not 0 <= dim < 2**63 for dim in checked):
        raise ConfigError(f"shape: dimensions must be non-negative, got {shape!r}")
    return checked


# The native layer reads these as 128-bit ints; larger Python ints are rejected here with
# the same message the core gives for any out-of-range value.
_RANGES = {"seed": "[0, 2**64)", "stream": "[0, 2**32)", "offset": "[0, 2**64)"}
# Named once: CPython folds only small powers, so an inline 2**127 is computed on every call
# (about 0.6 us each, most of a small draw's cost).
_INT128_MIN = -(2**127)
_INT128_END = 2**127


def _index(name: str, value: object) -> int:
    checked = integer(name, value)
    if not _INT128_MIN <= checked < _INT128_END:
        raise ConfigError(f"{name}: must be in {_RANGES[name]}, got {checked}")
    return checked


def _seed(seed: int | None) -> int:
    return seeding.current_seed() if seed is None else _index("seed", seed)


def uniform(
    shape: Shape,
    seed: int | None = None,
    stream: int = 0,
    *,
    offset: int = 0,
    dtype: str = "float64",
) -> np.ndarray:
    """Uniform floats in [0, 1).

    Args:
        shape: Output shape (an int for 1-D).
        seed: Any integer in [0, 2**64); None for the current global seed.
        stream: Independent stream of the same seed, in [0, 2**32).
        offset: Index of the first element within the stream, in [0, 2**64); the stream's
            indices wrap modulo 2**64, so elements past its end repeat its start.
        dtype: "float64" (53 random bits) or "float32" (24 random bits).

    Returns:
        A new numpy array of ``shape`` and ``dtype``.

    Raises:
        ConfigError: a bad shape, seed, stream or offset.
        DtypeError: an unsupported dtype.
    """
    return _native.core().uniform(
        _shape(shape), _seed(seed), _index("stream", stream), _index("offset", offset), str(dtype)
    )


def integers(
    low: int,
    high: int,
    shape: Shape,
    seed: int | None = None,
    stream: int = 0,
    *,
    offset: int = 0,
) -> np.ndarray:
    """Integers drawn exactly uniformly from [low, high) as int64.

    Args:
        low: Smallest value (inclusive), an int64.
        high: Bound (exclusive), an int64 greater than ``low``.
        shape: Output shape (an int for 1-D).
        seed: Any integer in [0, 2**64); None for the current global seed.
        stream: Independent stream of the same seed, in [0, 2**32).
        offset: Index of the first element within the stream, in [0, 2**64); the stream's
            indices wrap modulo 2**64, so elements past its end repeat its start.

    Returns:
        A new int64 numpy array of ``shape``.

    Raises:
        ConfigError: a bad bound, shape, seed, stream or offset.
    """
    low, high = integer("low", low), integer("high", high)
    for name, value in (("low", low), ("high", high)):
        if not -(2**63) <= value < 2**63:
            raise ConfigError(f"{name}: must fit in int64 [-2**63, 2**63), got {value}")
    return _native.core().integers(
        low, high, _shape(shape), _seed(seed), _index("stream", stream), _index("offset", offset)
    )
