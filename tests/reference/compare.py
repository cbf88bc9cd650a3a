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
        "rms": float(np.sqrt((diff**2).sum() / n)),
        "max_abs": float(absdiff.max()) if a.size else 0.0,
        "max_index": int(np.argmax(absdiff)) if a.size else 0,
        "scale": float(np.sqrt((np.where(finite, e, 0.0) ** 2).sum() / n + rms_eps**2)),
        "non_finite": int((~finite).sum()),
        "non_finite_mismatch": int((~finite & ~both_nan & ~same_inf).sum()),
    }
