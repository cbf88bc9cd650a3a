"""Slow float64 numpy references of the noise schedules and forward processes.

Schedules are the published formulas written the plain way (σ, σ', α = exp(-σ)); the
forward processes redo every decision token by token with the Philox reference.
"""

from __future__ import annotations

import math

import numpy as np

from tests.reference import philox

HALF_PI = math.pi / 2


def schedule(kind: str, first: float, second: float = 0.0) -> dict[str, object]:
    """``total_noise`` and ``noise_rate`` functions of float64 arrays, plus closed-form
    inverses where the issue states them."""
    if kind == "loglinear":
        a = 1.0 - first
        return {
            "total_noise": lambda t: -np.log1p(-a * t),
            "noise_rate": lambda t: a / (1.0 - a * t),
            "t_from_total_noise": lambda x: -np.expm1(-x) / a,
            "t_from_noise_rate": lambda x: 1.0 / a - 1.0 / x,
        }
    if kind == "linear":
        return {
            "total_noise": lambda t: first + t * (second - first),
            "noise_rate": lambda t: np.full_like(t, second - first),
            "t_from_total_noise": lambda x: (x - first) / (second - first),
        }
    if kind == "cosine":
        eps = first

        def alpha(t: np.ndarray) -> np.ndarray:
            return eps + (1.0 - eps) * np.cos(HALF_PI * t)

        return {
            "total_noise": lambda t: -np.log(alpha(t)),
            "noise_rate": lambda t: HALF_PI * (1.0 - eps) * np.sin(HALF_PI * t) / alpha(t),
            "t_from_total_noise": lambda x: np.arccos((np.exp(-x) - eps) / (1.0 - eps)) / HALF_PI,
        }
    if kind == "cosine_squared":
        eps = first

        def alpha2(t: np.ndarray) -> np.ndarray:
            c = np.cos(HALF_PI * t)
            return eps + (1.0 - eps) * (c * c)

        return {
            "total_noise": lambda t: -np.log(alpha2(t)),
            "noise_rate": lambda t: HALF_PI * (1.0 - eps) * np.sin(math.pi * t) / alpha2(t),
            "t_from_total_noise": lambda x: (
                np.arccos(np.sqrt((np.exp(-x) - eps) / (1.0 - eps))) / HALF_PI
            ),
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
