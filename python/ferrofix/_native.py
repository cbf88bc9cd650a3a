"""Loading the native extension: once, lazily, with a version check.

Nothing here runs at import time; ``core()`` imports ``ferrofix._core`` on first use, checks
that it was built from this source version, and applies a thread count the pytest plugin
requested before the extension was loaded.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from ferrofix import __version__

_CORE_NAME = "ferrofix._core"
_pending_threads: int | None = None


def check_version(module: ModuleType) -> None:
    """Raise ImportError when ``module`` was built from another version of ferrofix."""
    built = getattr(module, "__version__", "<unknown>")
    if built != __version__:
        raise ImportError(
            f"ferrofix {__version__} found a native extension built from version {built} "
            f"({getattr(module, '__file__', '?')}); rebuild with pip install -e ."
        )


def core() -> ModuleType:
    """The checked native extension, loaded on first call."""
    module = sys.modules.get(_CORE_NAME)
    if module is not None and getattr(module, "_ferrofix_checked", False):
        return module
    module = importlib.import_module(_CORE_NAME)
    check_version(module)
    module._ferrofix_checked = True
    _apply_pending_threads(module)
    return module


def loaded_core() -> ModuleType | None:
    """The extension if something already loaded it, else None (never loads it)."""
    module = sys.modules.get(_CORE_NAME)
    return module if getattr(module, "_ferrofix_checked", False) else None


def request_threads(threads: int | None) -> None:
    """Size the pool from ``--ferrofix-threads`` unless FERROFIX_NUM_THREADS is set.

    The environment variable wins, so a CI job can pin threads for every run. If the
    extension is not loaded yet the request waits for ``core()``.
    """
    global _pending_threads
    if threads is None or os.environ.get("FERROFIX_NUM_THREADS"):
        return
    _pending_threads = threads
    module = loaded_core()
    if module is not None:
        _apply_pending_threads(module)


def _apply_pending_threads(module: ModuleType) -> None:
    global _pending_threads
    if _pending_threads is not None:
        module.set_num_threads(_pending_threads)
        _pending_threads = None
