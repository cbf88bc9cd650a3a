"""ferrofix.rng against numpy's generators, same sizes, one process.

Anchors: numpy Generator with Philox (the same counter-based algorithm family, single
threaded) and with PCG64 (numpy's default). ferrofix runs with 1 thread and with all cores.
A second table times the small arrays fixtures draw (64 values), per call, contenders
interleaved.
Run: python benchmarks/bench_rng.py [--n N] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ferrofix
from _common import timed, timed_side_by_side, write_table
from ferrofix import rng


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n, reps = args.n, args.repeats
    philox, pcg = np.random.Generator(np.random.Philox(0)), np.random.default_rng(0)
    cores = os.cpu_count() or 1

    cases = {
        "uniform float64": (
            lambda: rng.uniform(n, 0),
            lambda: philox.random(n),
            lambda: pcg.random(n),
        ),
        "uniform float32": (
            lambda: rng.uniform(n, 0, dtype="float32"),
            lambda: philox.random(n, dtype=np.float32),
            lambda: pcg.random(n, dtype=np.float32),
        ),
        "integers [0, 50000)": (
            lambda: rng.integers(0, 50_000, n, 0),
            lambda: philox.integers(0, 50_000, n),
            lambda: pcg.integers(0, 50_000, n),
        ),
    }
    rows = []
    try:
        for name, (ours, np_philox, np_pcg) in cases.items():
            ferrofix.set_num_threads(1)
            one = timed(ours, reps)
            ferrofix.set_num_threads(cores)
            many = timed(ours, reps)
            a, b = timed(np_philox, reps), timed(np_pcg, reps)
            rows.append(
                [
                    name,
                    f"{one:.1f}",
                    f"{many:.1f}",
                    f"{a:.1f}",
                    f"{b:.1f}",
                    f"{a / one:.2f}x",
                    f"{a / many:.2f}x",
                    f"{b / many:.2f}x",
                ]
            )
    finally:
        ferrofix.set_num_threads(None)
    header = [
        f"{n:,} values",
        "ferrofix 1 thread (ms)",
        f"ferrofix {cores} threads (ms)",
        "numpy Philox (ms)",
        "numpy PCG64 (ms)",
        "speed-up vs Philox, 1 thread",
        f"vs Philox, {cores} threads",
        f"vs PCG64, {cores} threads",
    ]
    notes = (
        f"Medians of {reps} runs after a warm-up, all in one process on the same sizes "
        "(`python benchmarks/bench_rng.py`). Speed-up = anchor time / ferrofix time. "
        "ferrofix's output is the same bits at every thread count; numpy's generators are "
        "sequential."
    )
    write_table("rng", "Random arrays: ferrofix.rng vs numpy", header, rows, notes)
    small_calls(philox, pcg)


SMALL = 64
CALLS = 1000


def small_calls(philox: np.random.Generator, pcg: np.random.Generator) -> None:
    """Microseconds per call for a 64-value array, as a fixture draws it: whole-call
    overhead (argument checks, the native call, the numpy array) dominates here."""
    cases = {
        f"uniform float64, {SMALL} values": (
            lambda: rng.uniform(SMALL, 0),
            lambda: philox.random(SMALL),
            lambda: pcg.random(SMALL),
        ),
        f"integers [0, 50000), {SMALL} values": (
            lambda: rng.integers(0, 50_000, SMALL, 0),
            lambda: philox.integers(0, 50_000, SMALL),
            lambda: pcg.integers(0, 50_000, SMALL),
        ),
    }

    def repeated(fn: Callable[[], object]) -> Callable[[], object]:
        return lambda: [fn() for _ in range(CALLS)]

    rows = []
    for name, (ours, np_philox, np_pcg) in cases.items():
        ms = timed_side_by_side(
            {"ours": repeated(ours), "philox": repeated(np_philox), "pcg": repeated(np_pcg)}, 31
        )
        us = {key: value * 1e3 / CALLS for key, value in ms.items()}
        rows.append(
            [
                name,
                f"{us['ours']:.2f}",
                f"{us['philox']:.2f}",
                f"{us['pcg']:.2f}",
                f"{us['philox'] / us['ours']:.2f}x",
                f"{us['pcg'] / us['ours']:.2f}x",
            ]
        )
    header = [
        "one call",
        "ferrofix (us)",
        "numpy Philox (us)",
        "numpy PCG64 (us)",
        "speed-up vs Philox",
        "vs PCG64",
    ]
    notes = (
        f"Medians of 31 repeats of {CALLS} calls each, the three contenders interleaved "
        "repeat by repeat, in the same process as the table above. An array this small is "
        "filled on the calling thread (one 4096-value chunk or less never wakes the pool), so "
        "the figures are whole-call costs: argument checks, the native call and the numpy "
        "array."
    )
    write_table("rng_small", "Small random arrays: ferrofix.rng vs numpy", header, rows, notes)


if __name__ == "__main__":
    main()
