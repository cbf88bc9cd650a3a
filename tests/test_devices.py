"""gpu-marked tests, --ferrofix-require-gpu and the device fixture (on a machine without CUDA
these check the skip paths; on a GPU machine the gpu test runs)."""

from __future__ import annotations

import pytest
from ferrofix.devices import cuda_device_count

HAS_CUDA = bool(cuda_device_count(import_torch=True))

GPU_SUITE = """
import sys
import pytest

def test_cpu_only():
    # collecting the gpu test below must not import torch: only running it may
    assert "torch" not in sys.modules

@pytest.mark.gpu
def test_needs_gpu():
    import torch
    assert torch.cuda.is_available()
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-rs", *args)


@pytest.mark.skipif(HAS_CUDA, reason="checks the no-CUDA path")
def test_gpu_tests_skip_with_the_documented_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gpu=GPU_SUITE)
    result = run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_gpu.py:*: CUDA device not available"])


@pytest.mark.skipif(HAS_CUDA, reason="checks the no-CUDA path")
def test_require_gpu_turns_the_skip_into_a_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gpu=GPU_SUITE)
    result = run(pytester, "--ferrofix-require-gpu")
    result.assert_outcomes(passed=1, errors=1)  # fails in setup, reported as an error
    result.stdout.fnmatch_lines(["*CUDA device not available (--ferrofix-require-gpu is set)*"])


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_gpu_tests_run_on_a_gpu_machine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gpu=GPU_SUITE)
    run(pytester, "--ferrofix-require-gpu", "test_gpu.py::test_needs_gpu").assert_outcomes(passed=1)


def test_header_does_not_probe_cuda_by_importing_torch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    run(pytester).stdout.fnmatch_lines(["ferrofix *CUDA: not probed (torch not imported)*"])


def test_device_fixture_is_a_torch_device(device) -> None:
    import torch

    assert isinstance(device, torch.device)
    assert device.type == ("cuda" if HAS_CUDA else "cpu")


def test_device_fixture_skips_clearly_without_torch(pytester: pytest.Pytester) -> None:
    # A conftest that hides torch, as on a machine without the torch extra.
    pytester.makeconftest(
        "import importlib.util, sys\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'torch' else _find(name, *a)\n"
        "sys.modules.pop('torch', None)\n"
    )
    pytester.makepyfile("def test_dev(device): pass")
    result = run(pytester)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*the device fixture needs torch: pip install*"])
