"""Shared benchmark helpers: machine description, medians, result tables."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line naming the machine the figures came from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1e3


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls after one warm-up (page faults, pool start)."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return median_ms(samples)


def timed_side_by_side(
    contenders: dict[str, Callable[[], object]],
    repeats: int,
    before: Callable[[], object] | None = None,
) -> dict:
    """Median milliseconds of each contender, their calls interleaved repeat by repeat.

    On a shared machine the available bandwidth and cores drift over seconds; alternating
    the contenders exposes them all to the same drift, so their ratio stays meaningful.
    ``before``, when given, runs untimed before every timed call (to rebuild an input).
    """
    for fn in contenders.values():
        fn()  # warm up: page faults, pool start
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            if before is not None:
                before()
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: median_ms(times) for name, times in samples.items()}


def write_table(
    name: str, title: str, header: list[str], rows: list[list[str]], notes: str
) -> Path:
    """Print a markdown table and write it to benchmarks/results/<name>.md."""
    lines = [
        f"# {title}",
        "",
        f"Machine: {machine()}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        notes,
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    return path
