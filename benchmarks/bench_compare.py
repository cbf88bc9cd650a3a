"""ferrofix compare_tensors against the numpy expression of the same metrics, one process.

10^8 elements, float32 and bfloat16 (numpy has no bfloat16: its expression first widens the
bits to float32, as a suite would). Both compute, in float64: RMS of the difference, max
absolute difference and its index, the RMS scale of the reference and the non-finite count.
Run: python benchmarks/bench_compare.py [--n N] [--repeats R]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import timed, write_table
from ferrofix.assertions import compare_tensors

EPS = 1e-4


def numpy_compare(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float, int, float, int]:
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    finite = np.isfinite(a) & np.isfinite(e)
    diff = np.where(finite, a - e, 0.0)
    n = max(int(finite.sum()), 1)
    absdiff = np.abs(diff)
    index = int(absdiff.argmax())
    rms = math.sqrt(float(np.dot(diff, diff)) / n)
    reference = np.where(finite, e, 0.0)
    scale = math.sqrt(float(np.dot(reference, reference)) / n + EPS * EPS)
    return rms, float(absdiff[index]), index, scale, a.size - n


def widen_bf16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    expected = torch.randn(args.n, generator=gen)
    actual = expected + 1e-3 * torch.randn(args.n, generator=gen)
    rows = []
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a, e = actual.to(dtype), expected.to(dtype)
        if dtype == torch.bfloat16:
            a_np = a.view(torch.int16).numpy().view(np.uint16)
            e_np = e.view(torch.int16).numpy().view(np.uint16)

            def anchor(a_np=a_np, e_np=e_np):  # type: ignore[no-untyped-def]
                return numpy_compare(widen_bf16(a_np), widen_bf16(e_np))
        else:
            a_np, e_np = a.numpy(), e.numpy()

            def anchor(a_np=a_np, e_np=e_np):  # type: ignore[no-untyped-def]
                return numpy_compare(a_np, e_np)

        ours = compare_tensors(a, e, rms_eps=EPS)
        rms, max_abs, index, scale, non_finite = anchor()
        assert math.isclose(ours.rms, rms, rel_tol=1e-9)
        assert math.isclose(ours.scale, scale, rel_tol=1e-9)
        assert ours.max_abs == max_abs
        assert ours.max_index == (index,)
        assert ours.non_finite == non_finite
        ms = timed(lambda a=a, e=e: compare_tensors(a, e, rms_eps=EPS), args.repeats)
        anchor_ms = timed(anchor, args.repeats)
        gb = args.n * a.element_size() * 2 / 1e9
        rows.append(
            [
                f"{args.n:.0e} elements, {name}",
                f"{ms:.0f} ({gb / ms * 1e3:.1f} GB/s)",
                f"{anchor_ms:.0f}",
                f"{anchor_ms / ms:.1f}x",
            ]
        )
    write_table(
        "compare",
        "compare_tensors: ferrofix vs the numpy expression of the same metrics",
        ["case", "ferrofix ms (input GB/s)", "numpy ms", "numpy / ferrofix"],
        rows,
        "Medians of the repeats after one warm-up, same inputs in one process; results checked "
        "equal (RMS and scale to 1e-9 relative, max and its index exactly) before timing. "
        "Both accumulate in float64.",
    )


if __name__ == "__main__":
    main()
