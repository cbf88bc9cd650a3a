"""The comparison metrics written as the obvious numpy expressions, in float64."""

from __future__ import annotations

import numpy as np


def compare(actual: np.ndarray, expected: np.ndarray, rms_eps: float) -> dict:
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    finite = np.isfinite(a) & np.isfinite(e)
    both_nan = np.isnan(a) & np.isnan(e)
    same_inf = np.isinf(a) & (a == e)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(finite, a - e, 0.0)
    n = max(int(finite.sum()), 1)
    absdiff = np.abs(diff)
    return {
        "rms": _rms(diff, n),
        "max_abs": float(absdiff.max()) if a.size else 0.0,
        "max_index": int(np.argmax(absdiff)) if a.size else 0,
        "scale": float(np.hypot(_rms(np.where(finite, e, 0.0), n), rms_eps)),
        "non_finite": int((~finite).sum()),
        "non_finite_mismatch": int((~finite & ~both_nan & ~same_inf).sum()),
    }


def _rms(values: np.ndarray, n: int) -> float:
    """sqrt(sum(values²) / n), the values first divided by the power of two nearest their
    largest magnitude, so squares of huge values (past ~1e154) do not overflow."""
    largest = float(np.abs(values).max(initial=0.0))
    if largest == 0.0 or not np.isfinite(largest):
        return largest
    exponent = int(np.frexp(largest)[1])
    scaled = np.ldexp(values, -exponent)
    return float(np.ldexp(np.sqrt((scaled**2).sum() / n), exponent))
