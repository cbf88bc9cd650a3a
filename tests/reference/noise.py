"""Slow float64 numpy references of the noise schedules and forward processes.

Schedules are the published formulas written the plain way (σ, σ', α = exp(-σ)). The
log-linear and cosine family's σ and σ' are evaluated in mpmath instead, where float64
cancels: α rounds to 1 near t = 0 (for cosine exactly 1 below t ≈ 1e-8, so σ = -log α
keeps none of its digits), and near t = 1 a rounding inside α ≈ eps is large relative to
it (cos of the rounded πt/2 is 6e-17 at t = 1, not 0; 1 - a·t carries a·t's rounding).
The forward processes redo every decision token by token with the Philox reference.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import mpmath
import numpy as np

from tests.reference import philox

if TYPE_CHECKING:
    from collections.abc import Callable

HALF_PI = math.pi / 2
DIGITS = 40


def in_mpmath(formula: Callable[[mpmath.mpf], mpmath.mpf]) -> Callable[[np.ndarray], np.ndarray]:
    """``formula`` of each element (an exact float64) at ``DIGITS`` digits, rounded to float64."""

    def evaluate(t: np.ndarray) -> np.ndarray:
        with mpmath.workdps(DIGITS):
            values = [float(formula(mpmath.mpf(float(x)))) for x in np.ravel(t)]
        return np.array(values, dtype=np.float64).reshape(np.shape(t))

    return evaluate


def schedule(kind: str, first: float, second: float = 0.0) -> dict[str, object]:
    """``total_noise`` and ``noise_rate`` functions of float64 arrays, plus closed-form
    inverses where the issue states them."""
    if kind == "loglinear":
        a = 1.0 - first
        exact_a = mpmath.mpf(a)  # the float slope the schedule holds, exactly
        return {
            "total_noise": in_mpmath(lambda t: -mpmath.log(1 - exact_a * t)),
            "noise_rate": in_mpmath(lambda t: exact_a / (1 - exact_a * t)),
            "loss_weight": in_mpmath(lambda t: 1 / t if t else mpmath.inf),
            "t_from_total_noise": lambda x: -np.expm1(-x) / a,
            "t_from_noise_rate": lambda x: 1.0 / a - 1.0 / x,
        }
    if kind == "linear":
        return {
            "total_noise": lambda t: first + t * (second - first),
            "noise_rate": lambda t: np.full_like(t, second - first),
            "t_from_total_noise": lambda x: (x - first) / (second - first),
        }
    if kind in ("cosine", "cosine_squared"):
        eps = mpmath.mpf(first)
        power = 2 if kind == "cosine_squared" else 1

        def alpha(t: mpmath.mpf) -> mpmath.mpf:
            return eps + (1 - eps) * mpmath.cospi(t / 2) ** power

        def rate(t: mpmath.mpf) -> mpmath.mpf:
            # d/dt cos^p(πt/2) = -p·cos^(p-1)·sin·π/2
            c, s = mpmath.cospi(t / 2), mpmath.sinpi(t / 2)
            return (1 - eps) * power * c ** (power - 1) * s * mpmath.pi / 2 / alpha(t)

        def from_total(x: np.ndarray) -> np.ndarray:
            kept = (np.exp(-x) - first) / (1.0 - first)
            return np.arccos(kept if power == 1 else np.sqrt(kept)) / HALF_PI

        return {
            "total_noise": in_mpmath(lambda t: -mpmath.log(alpha(t))),
            "noise_rate": in_mpmath(rate),
            # σ'/expm1(σ), expm1(σ) = 1/α - 1 (+inf at t = 0, where σ = 0).
            "loss_weight": in_mpmath(lambda t: rate(t) / (1 / alpha(t) - 1) if t else mpmath.inf),
            "t_from_total_noise": from_total,
        }
    assert kind == "geometric"
    log_ratio = math.log(second) - math.log(first)
    return {
        "total_noise": lambda t: first ** (1.0 - t) * second**t,
        "noise_rate": lambda t: first ** (1.0 - t) * second**t * log_ratio,
        "t_from_total_noise": lambda x: (np.log(x) - math.log(first)) / log_ratio,
    }


MASK_STREAM = 0x6D61736B
CORRUPT_STREAM = 0x756E6966
CORRUPT_VALUE_STREAM = 0x7265706C


def _replaced(seed: int, stream: int, row: int, position: int, p: float) -> bool:
    index = (row << 32) | (position >> 2)
    word = philox.block(seed, stream, index)[position & 3]
    return word < round(p * 2.0**32)


def mask_tokens(
    ids: np.ndarray, probs: np.ndarray, mask_id: int, seed: int, protected: set[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(B, L) ids with per-token probabilities (B, L): the decision for every token."""
    out, mask = ids.copy(), np.zeros(ids.shape, bool)
    for row in range(ids.shape[0]):
        for pos in range(ids.shape[1]):
            if int(ids[row, pos]) in protected:
                continue
            if _replaced(seed, MASK_STREAM, row, pos, float(probs[row, pos])):
                out[row, pos], mask[row, pos] = mask_id, True
    return out, mask


def uniform_corrupt(
    ids: np.ndarray, probs: np.ndarray, vocab_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(B, L) ids, per-token probabilities: decisions and Lemire draws token by token."""
    out, mask = ids.copy(), np.zeros(ids.shape, bool)
    for row in range(ids.shape[0]):
        for pos in range(ids.shape[1]):
            if _replaced(seed, CORRUPT_STREAM, row, pos, float(probs[row, pos])):
                counter = (row << 32) | pos
                out[row, pos] = philox.integer(seed, CORRUPT_VALUE_STREAM, counter, 0, vocab_size)
                mask[row, pos] = True
    return out, mask
