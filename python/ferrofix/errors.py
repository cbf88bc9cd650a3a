"""Exceptions raised by ferrofix.

Every class also derives from the builtin a caller would naturally catch, so
``pytest.raises(ValueError)`` and ``except TypeError`` keep working. The native extension
raises these same classes (imported by name), so messages and types match across layers.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CudaError",
    "CudaUnavailableError",
    "DtypeError",
    "FerrofixError",
    "ShapeError",
    "UnknownTokenError",
]


class FerrofixError(Exception):
    """Base class of every error ferrofix raises on bad input or a failed operation."""


class ShapeError(FerrofixError, ValueError):
    """An array argument has the wrong shape or length."""


class ConfigError(FerrofixError, ValueError):
    """An argument's value is outside what the operation allows."""


class UnknownTokenError(ConfigError):
    """A tokenizer met a word or character that is not in its vocabulary."""


class DtypeError(FerrofixError, TypeError):
    """The operation does not support the argument's element type."""


class CudaUnavailableError(FerrofixError, RuntimeError):
    """CUDA was asked for, but there is no usable driver, device or CUDA build."""


class CudaError(FerrofixError, RuntimeError):
    """A CUDA driver, compiler or kernel call failed."""
