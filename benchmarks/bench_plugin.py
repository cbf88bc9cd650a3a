"""What the plugin costs a suite that uses none of it.

1. ``import ferrofix.plugin`` and the modules it registers (``PLUGIN_MODULES``) in fresh
   interpreters (pytest already imported, as it always is when pytest loads a
   plugin), and which heavy modules that pulled in.
2. The fixed cost per pytest run: one trivial test run with the plugin and with
   ``-p no:ferrofix``, with Python's bytecode cache and without (``PYTHONDONTWRITEBYTECODE``,
   as some CI images set: pytest then rewrites the asserts of every module an installed
   plugin loads, on every run).
3. A generated suite of 2000 trivial tests run with the plugin and with ``-p no:ferrofix``.

Runs alternate with and without the plugin so drift on a noisy machine hits both sides.
Goals: import <= 15 ms with no numpy/torch/_core loaded; suite overhead <= 3%.
Run: python benchmarks/bench_plugin.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_ms, write_table

IMPORT_PROBE = """
import importlib, json, sys, time
import pytest
t = time.perf_counter()
import ferrofix.plugin
for name in ferrofix.plugin.PLUGIN_MODULES:
    importlib.import_module(name)
elapsed = time.perf_counter() - t
heavy = ["numpy", "torch", "ferrofix._core", "ferrofix.tokenizers", "ferrofix.noise",
         "ferrofix.packing", "ferrofix.loss"]
print(json.dumps({"seconds": elapsed, "heavy": [m for m in heavy if m in sys.modules]}))
"""
TESTS_PER_FILE = 100
FILES = 20  # 2000 tests


def time_import(rounds: int) -> tuple[list[float], set[str]]:
    seconds, heavy = [], set()
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True
        )
        record = json.loads(out.stdout)
        seconds.append(record["seconds"])
        heavy.update(record["heavy"])
    return seconds, heavy


def make_suite(root: Path) -> None:
    body = "\n".join(f"def test_{i}():\n    assert {i} >= 0\n" for i in range(TESTS_PER_FILE))
    for f in range(FILES):
        (root / f"test_trivial_{f}.py").write_text(body)


def time_suite(
    root: Path, extra: list[str], tests: int = TESTS_PER_FILE * FILES, bytecode: bool = True
) -> float:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    start = time.perf_counter()
    out = subprocess.run([*args, *extra], cwd=root, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if out.returncode != 0 or f"{tests} passed" not in out.stdout:
        raise RuntimeError(f"suite run failed:\n{out.stdout}\n{out.stderr}")
    return elapsed


def fixed_cost(root: Path, rounds: int, bytecode: bool) -> tuple[float, float, float]:
    """Median ms of one trivial test with and without the plugin, and the median of the
    paired differences (each pair run back to back)."""
    test = root / "single" / "test_one.py"
    test.parent.mkdir()
    test.write_text("def test_one():\n    assert True\n")
    on, off, extra = [], [], []
    time_suite(test.parent, [], tests=1, bytecode=bytecode)  # warm up, fill the cache
    for _ in range(rounds):
        with_plugin = time_suite(test.parent, [], tests=1, bytecode=bytecode)
        without = time_suite(test.parent, ["-p", "no:ferrofix"], tests=1, bytecode=bytecode)
        on.append(with_plugin)
        off.append(without)
        extra.append(with_plugin - without)
    return median_ms(on), median_ms(off), statistics.median(extra) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9, help="suite runs per side")
    parser.add_argument("--import-rounds", type=int, default=30)
    parser.add_argument("--fixed-rounds", type=int, default=25, help="one-test runs per side")
    args = parser.parse_args()

    import_s, heavy = time_import(args.import_rounds)
    fixed = {}
    for bytecode in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            fixed[bytecode] = fixed_cost(Path(tmp), args.fixed_rounds, bytecode)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_suite(root)
        time_suite(root, [])  # warm the file system cache and bytecode
        with_plugin, without = [], []
        for _ in range(args.rounds):
            with_plugin.append(time_suite(root, []))
            without.append(time_suite(root, ["-p", "no:ferrofix"]))
    on, off = median_ms(with_plugin), median_ms(without)
    overhead = (on / off - 1) * 100
    imp = median_ms(import_s)
    rows = [
        [
            "`import ferrofix.plugin` and the modules it registers (pytest preloaded)",
            f"{imp:.1f} ms",
            "<= 15 ms",
            "yes" if imp <= 15 else "NO",
        ],
        [
            "heavy modules after that import (numpy, torch, `_core`, ferrofix's feature modules)",
            ", ".join(sorted(heavy)) or "none",
            "none",
            "yes" if not heavy else "NO",
        ],
        *(
            [
                f"one trivial test, {label}: with plugin / `-p no:ferrofix`",
                f"{fixed[cached][0]:.0f} / {fixed[cached][1]:.0f} ms "
                f"(+{fixed[cached][2]:.0f} ms per run)",
                "",
                "",
            ]
            for cached, label in ((True, "bytecode cached"), (False, "PYTHONDONTWRITEBYTECODE=1"))
        ),
        ["2000 trivial tests, with plugin", f"{on:.0f} ms", "", ""],
        ["2000 trivial tests, `-p no:ferrofix`", f"{off:.0f} ms", "", ""],
        [
            "suite overhead (with / without - 1)",
            f"{overhead:+.1f}%",
            "<= 3%",
            "yes" if overhead <= 3 else "NO",
        ],
    ]
    notes = (
        f"Medians of {args.import_rounds} fresh interpreters (import), {args.fixed_rounds} "
        f"alternating runs per side of one test (per-run cost: the median of each pair's "
        f"difference) and {args.rounds} of the 2000-test suite, measured in one run of "
        "`python benchmarks/bench_plugin.py`."
    )
    write_table("plugin", "Plugin overhead", ["measure", "median", "goal", "met"], rows, notes)


if __name__ == "__main__":
    main()
