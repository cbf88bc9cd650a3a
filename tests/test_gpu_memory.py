"""The GPU-memory report (with faked per-test peaks, so it runs on CPU, also across xdist
workers) and the per-worker GPU placement."""

from __future__ import annotations

import pytest
from ferrofix.gpu_memory import visible_gpus, worker_gpu

FAKE_PROBE = """
import ferrofix.gpu_memory as gpu_memory


class FakeProbe:
    def reset(self):
        pass

    def peak(self, item):
        marker = item.get_closest_marker("mib")
        return None if marker is None else (marker.args[0] * 2**20, marker.args[0] * 2**21)


gpu_memory.PROBE = FakeProbe()


def pytest_configure(config):
    config.addinivalue_line("markers", "mib(n): fake peak CUDA memory of the test")
"""

TESTS = """
import pytest


@pytest.mark.mib(10)
def test_small():
    pass


@pytest.mark.mib(30)
def test_big():
    pass


def test_cpu_only():
    pass


@pytest.mark.mib(20)
def test_medium():
    pass
"""

REPORT = [
    "*= ferrofix: peak GPU memory per test =*",
    "*allocated*reserved  test",
    "*30.0 MiB*60.0 MiB  test_report*::test_big",
    "*20.0 MiB*40.0 MiB  test_report*::test_medium",
    "(1 more tests touched CUDA)",
]


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_top_n_tests_by_peak_memory(pytester: pytest.Pytester, xdist: list[str]) -> None:
    pytester.makeconftest(FAKE_PROBE)
    pytester.makepyfile(test_report=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--show-gpu-memory", "2", *xdist)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(REPORT)


def test_long_option_and_no_cuda_at_all(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--ferrofix-show-gpu-memory=5")
    result.stdout.fnmatch_lines(["*ferrofix: peak GPU memory per test*", "no test touched CUDA"])


def test_no_report_unless_asked(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_PROBE)
    pytester.makepyfile(test_report=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert "peak GPU memory" not in result.stdout.str()


def test_a_suites_own_show_gpu_memory_wins(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        FAKE_PROBE
        + """
def pytest_addoption(parser):
    parser.addoption("--show-gpu-memory", action="store_true")
"""
    )
    pytester.makepyfile(test_report=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--show-gpu-memory")
    result.assert_outcomes(passed=4)
    assert "peak GPU memory" not in result.stdout.str()


def test_bad_count_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess("--ferrofix-show-gpu-memory", "lots")
    result.stderr.fnmatch_lines(
        ["*--ferrofix-show-gpu-memory must be an integer >= 0, got 'lots'*"]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


WHICH_GPU = """
import os


def test_record(worker_id, tmp_path_factory):
    out = tmp_path_factory.getbasetemp().parent / f"gpu-{worker_id}.txt"
    out.write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))


def test_record_again(worker_id, tmp_path_factory):
    test_record(worker_id, tmp_path_factory)
"""


def test_xdist_workers_get_one_gpu_each(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    pytester.makepyfile(test_gpus=WHICH_GPU)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-n", "2", "--dist", "each", "--ferrofix-xdist-gpus"
    )
    result.assert_outcomes(passed=4)
    files = {p.name: p.read_text() for p in pytester.path.parent.rglob("gpu-gw*.txt")}
    assert files == {"gpu-gw0.txt": "3", "gpu-gw1.txt": "5"}


def test_worker_gpu_assignment() -> None:
    assert worker_gpu("gw0", ["3", "5"]) == "3"
    assert worker_gpu("gw3", ["3", "5"]) == "5"
    assert worker_gpu("master", ["3", "5"]) is None
    assert worker_gpu("gw1", []) is None


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 7,")
    assert visible_gpus() == ["2", "7"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
