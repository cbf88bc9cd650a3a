"""The GPU-memory report and GPU placement of pytest-xdist workers.

``--ferrofix-show-gpu-memory N`` (``--show-gpu-memory N`` when free): for every test that
touched CUDA, the peak allocated and reserved memory over its setup, call and teardown (the
peaks are reset before each test) is recorded; the terminal summary lists the top N. Under
pytest-xdist each worker sends its records to the controller through ``workeroutput``.

``--ferrofix-xdist-gpus`` gives worker ``gwK`` the K-th visible GPU (modulo their number)
through ``CUDA_VISIBLE_DEVICES``, set before the worker's tests can initialise CUDA.

torch is never imported here: a test touched CUDA only if the run already imported torch
and CUDA is initialised.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from ferrofix.options import settings

__all__ = ["PROBE", "MemoryRecord", "TorchProbe", "worker_gpu"]

WORKEROUTPUT_KEY = "ferrofix_gpu_memory"
RECORDS_KEY = pytest.StashKey[list["MemoryRecord"]]()


class MemoryRecord(NamedTuple):
    """Peak CUDA memory of one test, in bytes."""

    nodeid: str
    allocated: int
    reserved: int


class TorchProbe:
    """Reads and resets torch's CUDA peak-memory counters (all devices)."""

    def _cuda(self) -> Any | None:
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_initialized():
            return None
        return torch.cuda

    def reset(self) -> None:
        cuda = self._cuda()
        if cuda is not None:
            for device in range(cuda.device_count()):
                cuda.reset_peak_memory_stats(device)

    def peak(self, item: pytest.Item) -> tuple[int, int] | None:
        """(allocated, reserved) peaks since the last reset; None when CUDA is untouched."""
        cuda = self._cuda()
        if cuda is None:
            return None
        devices = range(cuda.device_count())
        allocated = sum(cuda.max_memory_allocated(d) for d in devices)
        reserved = sum(cuda.max_memory_reserved(d) for d in devices)
        return (allocated, reserved) if reserved or allocated else None


#: What the report measures with; tests of the report replace it with fake numbers.
PROBE: Any = TorchProbe()


def _records(config: pytest.Config) -> list[MemoryRecord]:
    if RECORDS_KEY not in config.stash:
        config.stash[RECORDS_KEY] = []
    return config.stash[RECORDS_KEY]


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES, else the driver's list."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    gpus = Path("/proc/driver/nvidia/gpus")
    count = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    return [str(i) for i in range(count)]


def worker_gpu(worker_id: str, gpus: list[str]) -> str | None:
    """The GPU of xdist worker ``worker_id`` (``gwK`` gets ``gpus[K % len(gpus)]``)."""
    if not gpus or not worker_id.startswith("gw") or not worker_id[2:].isdecimal():
        return None
    return gpus[int(worker_id[2:]) % len(gpus)]


@pytest.hookimpl(trylast=True)  # after ferrofix.options has resolved the settings
def pytest_configure(config: pytest.Config) -> None:
    run = settings(config)
    workerinput = getattr(config, "workerinput", None)
    if run.xdist_gpus and workerinput is not None:
        gpu = worker_gpu(str(workerinput.get("workerid", "")), visible_gpus())
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    if not run.show_gpu_memory:
        return  # no per-test wrapper at all: a run that does not ask pays nothing per test
    config.pluginmanager.register(_MemoryProbeHooks(), "ferrofix-gpu-memory-probe")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistMemoryHooks(config), "ferrofix-xdist-gpu-memory")


class _MemoryProbeHooks:
    """Each test's peak GPU memory; registered only with ``--show-gpu-memory``."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator:
        PROBE.reset()
        try:
            return (yield)
        finally:
            peak = PROBE.peak(item)
            if peak is not None:
                _records(item.config).append(MemoryRecord(item.nodeid, *peak))


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None and settings(config).show_gpu_memory:
        workeroutput[WORKEROUTPUT_KEY] = [list(r) for r in _records(config)]


class _XdistMemoryHooks:
    """Controller side: collect the workers' records; registered only when xdist is loaded."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {}) or {}
        for nodeid, allocated, reserved in output.get(WORKEROUTPUT_KEY, []):
            _records(self.config).append(MemoryRecord(nodeid, allocated, reserved))


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    top = settings(config).show_gpu_memory
    if not top or hasattr(config, "workerinput"):
        return
    records = sorted(_records(config), key=lambda r: (-r.allocated, -r.reserved, r.nodeid))
    terminalreporter.section("ferrofix: peak GPU memory per test")
    if not records:
        terminalreporter.write_line("no test touched CUDA")
        return
    terminalreporter.write_line(f"{'allocated':>14} {'reserved':>14}  test")
    for record in records[:top]:
        terminalreporter.write_line(
            f"{_mib(record.allocated):>14} {_mib(record.reserved):>14}  {record.nodeid}"
        )
    if len(records) > top:
        terminalreporter.write_line(f"({len(records) - top} more tests touched CUDA)")
