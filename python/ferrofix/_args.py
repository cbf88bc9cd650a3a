"""Scalar arguments (sizes, ids, seeds, rates, tolerances, named options), read the same way
by every entry point.

An integer argument is what Python's own ``range`` takes: an int or an integer scalar that
has ``__index__`` (numpy integer scalars and 0-d arrays, one-element torch integer tensors),
so ``max_length=lengths.max()`` works wherever ``max_length=7`` does. Floats are refused,
even integral ones: truncating ``10.5`` would be a silent wrong answer.

A number argument is any real scalar: ints, floats, numpy scalars such as ``np.float32``,
0-d arrays and 0-d tensors (a tolerance or rate computed with numpy or torch). Strings and
complex numbers are refused.

Bools are never either, numpy's and torch's included: ``True`` is not a length or a rate,
and reading it as 1 hides the mistake. A flag, in turn, is a bool (Python's or numpy's):
``1``, ``"yes"`` or a tensor is refused rather than read by its truthiness.

Imports nothing heavy: the plugin and the light fixture modules use it.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Iterable
from typing import TypeVar

from ferrofix import _torch
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
_Option = TypeVar("_Option")


def integer(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int in [low, high] (either bound may be left open).

    Raises:
        ConfigError: naming ``name`` and the allowed values, when ``value`` is not an
            integer or lies outside the bounds.
    """
    return _bounded(name, value, low, high, "")


def optional_integer(
    name: str, value: object, *, low: int | None = None, high: int | None = None
) -> int | None:
    """``None`` as it is, anything else as :func:`integer` reads it."""
    return None if value is None else _bounded(name, value, low, high, " or None")


def _bounded(name: str, value: object, low: int | None, high: int | None, also: str) -> int:
    """The int ``value`` stands for, within the bounds; ``also`` names what else the
    caller allows, for the message."""
    number = value if type(value) is int else _index(name, value)
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        shown = repr(value) if number is None else number
        raise ConfigError(f"{name}: must be {_allowed(low, high)}{also}, got {shown}")
    return number


def number(name: str, value: object, allowed: str = "a number") -> float:
    """``value`` as a Python float; ``allowed`` (what the caller's range check accepts, e.g.
    ``"a number in [0, 1)"``) goes into the error so one message names the allowed values."""
    if type(value) is float or type(value) is int:
        return float(value)
    if _is_bool(value) or not (isinstance(value, numbers.Real) or _is_real_scalar(value)):
        raise ConfigError(f"{name}: must be {allowed}, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except RuntimeError as error:
        raise _unreadable(name, allowed, value, error) from None


def optional_number(name: str, value: object, allowed: str = "a number") -> float | None:
    """``None`` as it is, anything else as :func:`number` reads it."""
    return None if value is None else number(name, value, f"{allowed} or None")


def flag(name: str, value: object) -> bool:
    """``value`` as a Python bool: True, False or a numpy bool."""
    if value is True or value is False:
        return value
    if _is_numpy_bool(value):
        return bool(value)
    raise ConfigError(f"{name}: must be True or False, got {value!r}")


def optional_flag(name: str, value: object, default: bool) -> bool:
    """``default`` for None (HF's "the tokenizer's default"), anything else as :func:`flag`."""
    if value is None:
        return default
    if value is True or value is False:
        return value
    try:
        return flag(name, value)
    except ConfigError:
        raise ConfigError(f"{name}: must be True, False or None, got {value!r}") from None


def choice(name: str, value: object, allowed: Iterable[_Option]) -> _Option:
    """The option in ``allowed`` (strings, bools, None) that ``value`` names.

    A str subclass names the string it equals (HF passes ``PaddingStrategy.LONGEST``, a str
    enum whose hash is not the string's, so callers use the option returned) and a numpy
    bool the bool it is; otherwise options match by identity, so ``1`` is not ``True``;
    anything else, unhashable values included, is a ConfigError naming the choices.
    """
    # A loop rather than any(genexpr): these checks run on every call (~1 us saved).
    for option in allowed:
        if value is option:
            return option
        if type(option) is str:
            if isinstance(value, str) and value == option:
                return option
        elif type(option) is bool and _is_numpy_bool(value) and bool(value) is option:
            return option
    listed = ", ".join(repr(option) for option in allowed)
    raise ConfigError(f"{name}: must be one of {listed}, got {value!r}")


def _is_real_scalar(value: object) -> bool:
    """A 0-d numpy array or tensor of an integer or float dtype (HF passes
    num_items_in_batch as a tensor). Bools are caught before this."""
    if getattr(value, "shape", None) != ():
        return False
    dtype = getattr(value, "dtype", None)
    kind = getattr(dtype, "kind", None)  # numpy's dtype letter; torch dtypes have none
    if kind is not None:
        return kind in "iuf"
    return dtype is not None and getattr(dtype, "is_complex", True) is False


def _is_numpy_bool(value: object) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")


def _is_bool(value: object) -> bool:
    return isinstance(value, bool) or str(getattr(value, "dtype", "")) in _BOOL_DTYPES


def _index(name: str, value: object) -> int | None:
    """The int ``value`` stands for, or None when it is not an integer (or is a bool)."""
    if _is_bool(value):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:  # floats, strings, arrays of more than one element, ...
        return None
    except RuntimeError as error:
        raise _unreadable(name, "an integer", value, error) from None


def _unreadable(name: str, allowed: str, value: object, error: RuntimeError) -> ConfigError:
    """The error for a one-element tensor torch refuses to read as a value: one that
    torch.func.vmap batches (a value per sample, no single one), or one on the meta device."""
    if _torch.in_transform(value):
        got = "a tensor that torch.func.vmap batches (a value per sample); pass one value"
    elif _torch.is_tensor(value):
        got = f"a tensor torch cannot read as one value ({error})"
    else:
        got = f"{type(value).__name__} that cannot be read as one value ({error})"
    return ConfigError(f"{name}: must be {allowed}, got {got}")


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
