"""Masking forward process and schedule evaluation: ferrofix vs numpy vs torch CPU.

Anchors, side by side in one process on the same inputs:
- masking: numpy ``rng.random(shape) < p[:, None]`` then ``np.where``; torch
  ``torch.rand(shape) < p[:, None]`` then ``torch.where`` (torch at its default thread count);
- uniform corruption: the same decisions, and the new ids from ``rng.integers`` /
  ``torch.randint`` for every token;
- schedules: σ(t) and σ'(t) of 10^7 times written as numpy and torch expressions.
Run: python benchmarks/bench_noise.py [--repeats R] [--n N]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import timed, write_table
from ferrofix.noise import (
    CosineSchedule,
    GeometricSchedule,
    LogLinearSchedule,
    mask_tokens,
    uniform_corrupt,
)

MASK_ID = 50_000
VOCAB = 50_000


def masking_row(process: str, batch: int, length: int, repeats: int) -> list[str]:
    """``mask_tokens`` or ``uniform_corrupt`` against the same process in numpy and torch."""
    ids = np.random.default_rng(0).integers(0, VOCAB, (batch, length))  # (B, L) int64
    p = LogLinearSchedule().mask_probability(np.linspace(0.05, 0.95, batch))  # (B,)
    ids_t, p_t = torch.from_numpy(ids), torch.from_numpy(p)
    generator = np.random.default_rng(1)
    torch_generator = torch.Generator().manual_seed(1)

    def numpy_process() -> object:
        mask = generator.random(ids.shape) < p[:, None]  # (B, L)
        if process == "mask_tokens":
            return np.where(mask, MASK_ID, ids), mask
        return np.where(mask, generator.integers(0, VOCAB, ids.shape), ids), mask

    def torch_process() -> object:
        mask = torch.rand(ids_t.shape, generator=torch_generator, dtype=torch.float64)
        mask = mask < p_t[:, None]  # (B, L)
        if process == "mask_tokens":
            return torch.where(mask, MASK_ID, ids_t), mask
        new = torch.randint(0, VOCAB, ids_t.shape, generator=torch_generator)
        return torch.where(mask, new, ids_t), mask

    def ours(ids: Any, p: Any) -> object:
        if process == "mask_tokens":
            return mask_tokens(ids, p, MASK_ID, seed=0)
        return uniform_corrupt(ids, p, VOCAB, seed=0)

    ours_ms = timed(lambda: ours(ids, p), repeats)
    ours_torch = timed(lambda: ours(ids_t, p_t), repeats)
    np_ms, torch_ms = timed(numpy_process, repeats), timed(torch_process, repeats)
    tokens = batch * length
    return [
        f"{process} B={batch}, L={length}",
        f"{ours_ms:.2f} ({tokens / ours_ms / 1e3:.0f} M tok/s)",
        f"{ours_torch:.2f}",
        f"{np_ms:.2f}",
        f"{torch_ms:.2f}",
        f"{np_ms / ours_ms:.1f}x",
        f"{torch_ms / ours_torch:.1f}x",
    ]


def formulas(lib: Any) -> dict[str, Callable[[Any], tuple[Any, Any]]]:
    """σ' and σ written as array expressions of ``lib`` (numpy or torch: same function names)."""
    a, eps = 1 - 1e-3, 1e-3
    lo, hi = 1e-3, 1.0
    log_ratio = math.log(hi) - math.log(lo)

    def loglinear(t: Any) -> tuple[Any, Any]:
        return a / (1 - a * t), -lib.log1p(-a * t)

    def cosine(t: Any) -> tuple[Any, Any]:
        alpha = eps + (1 - eps) * lib.cos(math.pi / 2 * t)
        return math.pi / 2 * (1 - eps) * lib.sin(math.pi / 2 * t) / alpha, -lib.log(alpha)

    def geometric(t: Any) -> tuple[Any, Any]:
        sigma = lo ** (1 - t) * hi**t
        return sigma * log_ratio, sigma

    return {"loglinear": loglinear, "cosine": cosine, "geometric": geometric}


def schedule_rows(n: int, repeats: int) -> list[list[str]]:
    schedules = {
        "loglinear": LogLinearSchedule(eps=1e-3),
        "cosine": CosineSchedule(eps=1e-3),
        "geometric": GeometricSchedule(1e-3, 1.0),
    }
    numpy_table, torch_table = formulas(np), formulas(torch)
    rows = []
    for dtype in (np.float64, np.float32):
        t = np.random.default_rng(2).random(n).astype(dtype)  # (n,)
        for name, schedule in schedules.items():
            expected = numpy_table[name](t.astype(np.float64))[1]
            # The anchors' plain cosine σ = -log α cancels near t = 0 (α rounds to 1), where
            # ferrofix's does not: the two agree to 1e-16 absolute there.
            np.testing.assert_allclose(schedule.total_noise(t), expected, rtol=1e-5, atol=1e-15)
            label = f"{name} σ and σ', {np.dtype(dtype).name}"
            rows.append(
                schedule_row(label, t, repeats, schedule, numpy_table[name], torch_table[name])
            )
    return rows


def schedule_row(
    label: str,
    t: np.ndarray,
    repeats: int,
    ours_fn: Callable[[np.ndarray], object],
    numpy_fn: Callable[[np.ndarray], object],
    torch_fn: Callable[[torch.Tensor], object],
) -> list[str]:
    """Time ferrofix, numpy and torch on the same times."""
    t_torch = torch.from_numpy(t)
    ours = timed(lambda: ours_fn(t), repeats)
    np_ms = timed(lambda: numpy_fn(t), repeats)
    torch_ms = timed(lambda: torch_fn(t_torch), repeats)
    return [
        label,
        f"{ours:.1f}",
        f"{np_ms:.1f}",
        f"{torch_ms:.1f}",
        f"{np_ms / ours:.1f}x",
        f"{torch_ms / ours:.1f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--n", type=int, default=10_000_000)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    mask_header = [
        "case",
        "ferrofix numpy in (ms)",
        "ferrofix torch in (ms)",
        "numpy (ms)",
        f"torch CPU, {threads} threads (ms)",
        "vs numpy",
        "vs torch",
    ]
    schedule_header = [
        f"{args.n:,} times",
        "ferrofix (ms)",
        "numpy (ms)",
        f"torch CPU, {threads} threads (ms)",
        "vs numpy",
        "vs torch",
    ]
    mask = [
        masking_row(process, b, length, args.repeats)
        for process in ("mask_tokens", "uniform_corrupt")
        for b, length in ((64, 1024), (256, 4096))
    ]
    schedule = schedule_rows(args.n, args.repeats)
    notes = (
        f"Medians of {args.repeats} runs after a warm-up, all in one process on the same inputs "
        "(`python benchmarks/bench_noise.py`). Speed-up = anchor time / ferrofix time. "
        "Masking and uniform corruption use per-row probabilities from the log-linear schedule "
        "and int64 ids; the anchors draw float64 uniforms for the decisions and, for uniform "
        "corruption, an int64 id for every token (numpy's and torch's integer samplers). "
        "ferrofix computes schedules in float64 and rounds once "
        "to the input dtype; the numpy and torch anchors compute float32 inputs in float32.\n\n"
        "## Schedule evaluation\n\n"
        "| " + " | ".join(schedule_header) + " |\n"
        "|"
        + "|".join("---" for _ in schedule_header)
        + "|\n"
        + "\n".join("| " + " | ".join(row) + " |" for row in schedule)
    )
    write_table(
        "noise", "Masking and noise schedules: ferrofix vs numpy vs torch", mask_header, mask, notes
    )


if __name__ == "__main__":
    main()
