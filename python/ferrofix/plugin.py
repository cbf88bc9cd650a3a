"""The pytest11 entry point of pytest-ferrofix.

Importing this module must never fail and must stay cheap: it imports no numpy, torch or
native extension (a plugin that fails to import aborts every pytest run of the user). Each
concern lives in its own module, registered here through ``pytest_plugins``.
"""

from __future__ import annotations

import os

import pytest

import ferrofix
from ferrofix.devices import describe_cuda
from ferrofix.options import settings

# The mixins use bare asserts; rewrite them for readable failures in users' test classes.
pytest.register_assert_rewrite("ferrofix.mixins")

pytest_plugins = [
    "ferrofix.options",
    "ferrofix.markers",
    "ferrofix.seeding",
    "ferrofix.devices",
    "ferrofix.gpu_memory",
    "ferrofix.groups",
    "ferrofix.fixtures.paths",
    "ferrofix.fixtures.models",
    "ferrofix.loss",
    "ferrofix.noise",
    "ferrofix.packing",
    "ferrofix.tokenizers",
]


def _native_summary(config: pytest.Config) -> str:
    """Build profile and thread count; loads the extension (fast: no numpy, no torch)."""
    try:
        from ferrofix import _native

        core = _native.core()
        workers = getattr(config.option, "numprocesses", None)
        explicit = settings(config).threads is not None and not os.environ.get(
            "FERROFIX_NUM_THREADS"
        )
        if isinstance(workers, int) and workers > 0 and not explicit:
            # The controller runs no tests: show what each xdist worker will use.
            threads = f"{core.default_num_threads(workers)} per worker"
        else:
            threads = str(core.num_threads())
        return f"{core.build_profile} build, threads: {threads}"
    except Exception as error:  # the header must never break a run
        return f"native extension unavailable ({error})"


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"ferrofix {ferrofix.__version__}: {_native_summary(config)}, "
        f"CUDA: {describe_cuda()}, seed: {settings(config).seed}"
    )
