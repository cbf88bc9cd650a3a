"""The pytest11 entry point of pytest-ferrofix.

Importing this module must never fail and must stay cheap: it imports no numpy, torch or
native extension (a plugin that fails to import aborts every pytest run of the user). Each
concern lives in its own module, registered here when pytest registers this one.
"""

from __future__ import annotations

import os

import pytest

import ferrofix
from ferrofix.devices import describe_cuda
from ferrofix.options import settings

# The mixins use bare asserts; rewrite them for readable failures in users' test classes.
pytest.register_assert_rewrite("ferrofix.mixins")

# Registered by pytest_addhooks below rather than listed in ``pytest_plugins``: pytest looks
# every name in that list up among all installed distributions' entry points before
# importing it, a scan that costs ~5 ms per name in an ML virtualenv (12 names: ~65 ms on
# every pytest run and every xdist worker).
PLUGIN_MODULES = (
    "ferrofix.options",
    "ferrofix.markers",
    "ferrofix.seeding",
    "ferrofix.devices",
    "ferrofix.gpu_memory",
    "ferrofix.groups",
    "ferrofix.fixtures.paths",
    "ferrofix.fixtures.models",
    "ferrofix.fixtures.loss",
    "ferrofix.fixtures.noise",
    "ferrofix.fixtures.packing",
    "ferrofix.fixtures.tokenizers",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    # The earliest hook with the plugin manager, called as this module is registered, so the
    # concern modules' options, ini keys and early hooks take part from the start.
    # import_plugin skips a module already registered or blocked (``-p no:<module>``).
    for name in PLUGIN_MODULES:
        pluginmanager.import_plugin(name)


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
