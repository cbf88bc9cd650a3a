"""Integer arguments (sizes, ids, seeds, thread counts), read the same way by every entry point.

An integer argument is what Python's own ``range`` takes: an int or an integer scalar that
has ``__index__`` (numpy integer scalars and 0-d arrays, one-element torch integer tensors),
so ``max_length=lengths.max()`` works wherever ``max_length=7`` does. Bools are refused,
numpy's and torch's included (``True`` is not a length), and so are floats, even integral
ones: truncating ``10.5`` would be a silent wrong answer. Imports nothing heavy: the plugin
and the light fixture modules use it.
"""

from __future__ import annotations

import operator

from ferrofix.errors import ConfigError

# Bounds written the way a reader knows them rather than as 19 digits.
_NAMED_BOUNDS = {
    2**31 - 1: "2**31 - 1",
    2**32 - 1: "2**32 - 1",
    2**63 - 1: "2**63 - 1",
    2**64 - 1: "2**64 - 1",
    -(2**63): "-2**63",
}
_BOOL_DTYPES = ("bool", "torch.bool")


def integer(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int in [low, high] (either bound may be left open).

    Raises:
        ConfigError: naming ``name`` and the allowed values, when ``value`` is not an
            integer or lies outside the bounds.
    """
    number = value if type(value) is int else _index(value)
    if number is None:
        raise ConfigError(f"{name}: must be {_allowed(low, high)}, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise ConfigError(f"{name}: must be {_allowed(low, high)}, got {number}")
    return number


def optional_integer(
    name: str, value: object, *, low: int | None = None, high: int | None = None
) -> int | None:
    """``None`` as it is, anything else as :func:`integer` reads it."""
    if value is None:
        return None
    number = value if type(value) is int else _index(value)
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        shown = repr(value) if number is None else number
        raise ConfigError(f"{name}: must be {_allowed(low, high)} or None, got {shown}")
    return number


def _index(value: object) -> int | None:
    """The int ``value`` stands for, or None when it is not an integer (or is a bool)."""
    if isinstance(value, bool) or str(getattr(value, "dtype", "")) in _BOOL_DTYPES:
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:  # floats, strings, arrays of more than one element, ...
        return None


def _allowed(low: int | None, high: int | None) -> str:
    if low is None and high is None:
        return "an integer"
    if high is None:
        return f"an integer >= {low}"
    if low is None:
        return f"an integer <= {_bound(high)}"
    return f"an integer in [{_bound(low)}, {_bound(high)}]"


def _bound(value: int) -> str:
    return _NAMED_BOUNDS.get(value, str(value))
