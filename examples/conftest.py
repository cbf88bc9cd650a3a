"""Fixtures of the example suite, built on ferrofix's seeds and generator."""

from __future__ import annotations

import numpy as np
import pytest
from ferrofix import rng

VOCAB = 8


@pytest.fixture
def corpus(ferrofix_seed: int) -> np.ndarray:
    """Token ids from a known Markov chain: token t is followed by (t + 1) % VOCAB 90% of the
    time, so a bigram model can learn it. Same seed, same corpus, on any machine."""
    n = 4000
    noise = rng.integers(0, VOCAB, n, seed=ferrofix_seed, stream=1)
    follow = rng.uniform(n, seed=ferrofix_seed, stream=2) < 0.9
    tokens = np.empty(n, dtype=np.int64)
    tokens[0] = 0
    for i in range(1, n):
        tokens[i] = (tokens[i - 1] + 1) % VOCAB if follow[i] else noise[i]
    return tokens
