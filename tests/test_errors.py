"""The exception hierarchy and the one Rust -> Python mapping table."""

from __future__ import annotations

import pytest
from ferrofix import _native, errors

HIERARCHY = [
    (errors.ShapeError, ValueError),
    (errors.ConfigError, ValueError),
    (errors.DtypeError, TypeError),
    (errors.UnknownTokenError, ValueError),
    (errors.CudaUnavailableError, RuntimeError),
    (errors.CudaError, RuntimeError),
]


@pytest.mark.parametrize(("cls", "builtin"), HIERARCHY)
def test_every_error_is_a_ferrofix_error_and_its_natural_builtin(cls, builtin) -> None:
    assert issubclass(cls, errors.FerrofixError)
    assert issubclass(cls, builtin)
    assert issubclass(errors.FerrofixError, Exception)


# One row per core error variant: Python class and exact message.
MAPPING = [
    ("ShapeMismatch", errors.ShapeError, "logits: expected shape (N, V), got (3,)"),
    ("InvalidArgument", errors.ConfigError, "reduction: must be one of mean, sum, none; got 'avg'"),
    (
        "UnsupportedDtype",
        errors.DtypeError,
        "uniform does not support dtype int8; supported: float32, float64",
    ),
    ("UnknownToken", errors.UnknownTokenError, "Token 'x' not in vocab"),
    ("CudaUnavailable", errors.CudaUnavailableError, "CUDA is not available: libcuda.so not found"),
    ("Cuda", errors.CudaError, "CUDA error in cross_entropy_fwd: out of memory"),
]


@pytest.mark.parametrize(("variant", "cls", "message"), MAPPING)
def test_core_variants_map_to_their_class_with_the_exact_message(variant, cls, message) -> None:
    with pytest.raises(cls) as info:
        _native.core()._raise_example_error(variant)
    assert type(info.value) is cls
    assert str(info.value) == message


def test_unknown_variant_is_a_config_error_listing_the_variants() -> None:
    with pytest.raises(
        errors.ConfigError,
        match="must be one of ShapeMismatch, InvalidArgument, UnsupportedDtype, UnknownToken",
    ):
        _native.core()._raise_example_error("Nope")


def test_errors_are_reachable_from_the_package_facade() -> None:
    import ferrofix

    assert ferrofix.ShapeError is errors.ShapeError
    assert ferrofix.errors is errors
