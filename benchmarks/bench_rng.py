"""ferrofix.rng against numpy's generators, same sizes, one process.

Anchors: numpy Generator with Philox (the same counter-based algorithm family, single
threaded) and with PCG64 (numpy's default). ferrofix runs with 1 thread and with all cores.
Run: python benchmarks/bench_rng.py [--n N] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ferrofix
from _common import timed, write_table
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


if __name__ == "__main__":
    main()
