"""CUDA discovery, the ``device`` fixture and the handling of ``gpu``-marked tests.

Probing never imports torch on its own initiative: only when the run already imported it,
or when a ``gpu`` test or the ``device`` fixture is about to need it.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import pytest

__all__ = ["cuda_device_count", "device"]

GPU_SKIP_REASON = "CUDA device not available"
_TORCH_MISSING = "the device fixture needs torch: pip install 'pytest-ferrofix[torch]'"


def cuda_device_count(*, import_torch: bool) -> int | None:
    """CUDA devices torch can see: 0 without torch or CUDA, None when not probed.

    Args:
        import_torch: Whether importing torch (~2 s) is allowed. If False and the process
            has not imported torch yet, nothing is probed and None is returned.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        if not import_torch:
            return None
        if importlib.util.find_spec("torch") is None:
            return 0
        import torch
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # a broken driver install must read as "no GPU", not crash the run
        return 0


def describe_cuda() -> str:
    """A short CUDA status for the report header."""
    count = cuda_device_count(import_torch=False)
    if count is None:
        return "not probed (torch not imported)"
    return f"{count} device(s)" if count else "not available"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is None:
        return
    if cuda_device_count(import_torch=True):
        return
    from ferrofix.options import settings

    if settings(item.config).require_gpu:
        pytest.fail(f"{GPU_SKIP_REASON} (--ferrofix-require-gpu is set)", pytrace=False)
    # A skip marker (evaluated by pytest's skipping plugin, which runs after this tryfirst
    # hook) reports the test's own location instead of this file's.
    item.add_marker(pytest.mark.skip(reason=GPU_SKIP_REASON))


@pytest.fixture(scope="session")
def device() -> Any:
    """``torch.device("cuda")`` when a CUDA device is available, else ``torch.device("cpu")``.

    Skips the test with a clear reason when torch is not installed.
    """
    if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
        pytest.skip(_TORCH_MISSING)
    import torch

    return torch.device("cuda" if cuda_device_count(import_torch=True) else "cpu")
