"""What the plugin costs a suite that uses none of it.

1. ``import ferrofix.plugin`` in fresh interpreters (pytest already imported, as it always is
   when pytest loads a plugin), and which heavy modules that import pulled in.
2. A generated suite of 2000 trivial tests run with the plugin and with ``-p no:ferrofix``,
   alternating so drift on a noisy machine hits both sides equally.

Goals: import <= 15 ms with no numpy/torch/_core loaded; suite overhead <= 3%.
Run: python benchmarks/bench_plugin.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_ms, write_table

IMPORT_PROBE = """
import json, sys, time
import pytest
t = time.perf_counter()
import ferrofix.plugin
elapsed = time.perf_counter() - t
heavy = [m for m in ("numpy", "torch", "ferrofix._core") if m in sys.modules]
print(json.dumps({"seconds": elapsed, "heavy": heavy}))
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


def time_suite(root: Path, extra: list[str]) -> float:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    out = subprocess.run([*args, *extra], cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0 or f"{TESTS_PER_FILE * FILES} passed" not in out.stdout:
        raise RuntimeError(f"suite run failed:\n{out.stdout}\n{out.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9, help="suite runs per side")
    parser.add_argument("--import-rounds", type=int, default=30)
    args = parser.parse_args()

    import_s, heavy = time_import(args.import_rounds)
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
            "`import ferrofix.plugin` (pytest preloaded)",
            f"{imp:.1f} ms",
            "<= 15 ms",
            "yes" if imp <= 15 else "NO",
        ],
        [
            "heavy modules after that import",
            ", ".join(sorted(heavy)) or "none",
            "none",
            "yes" if not heavy else "NO",
        ],
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
        f"Medians of {args.import_rounds} fresh interpreters (import) and {args.rounds} "
        "alternating runs per side (suite), measured in one run of "
        "`python benchmarks/bench_plugin.py`."
    )
    write_table("plugin", "Plugin overhead", ["measure", "median", "goal", "met"], rows, notes)


if __name__ == "__main__":
    main()
