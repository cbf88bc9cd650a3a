"""A bigram language model trained by gradient descent, tested like a real model."""

from __future__ import annotations

import numpy as np
import pytest
from ferrofix import rng

from .conftest import VOCAB


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, V)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def train(tokens: np.ndarray, seed: int, steps: int, lr: float = 2.0) -> tuple[np.ndarray, list]:
    weights = (rng.uniform((VOCAB, VOCAB), seed=seed, stream=3) - 0.5) * 0.1  # (V, V)
    inputs, targets = tokens[:-1], tokens[1:]
    onehot = np.eye(VOCAB)[targets]  # (N, V)
    losses = []
    for _ in range(steps):
        logits = weights[inputs]  # (N, V)
        losses.append(cross_entropy(logits, targets))
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        grad = np.zeros_like(weights)
        np.add.at(grad, inputs, (probs - onehot) / len(targets))
        weights -= lr * grad
    return weights, losses


@pytest.mark.smoke
def test_corpus_is_deterministic_per_test(corpus: np.ndarray, ferrofix_seed: int) -> None:
    again = rng.integers(0, VOCAB, 4000, seed=ferrofix_seed, stream=1)
    assert corpus.shape == (4000,)
    assert corpus.min() >= 0
    assert corpus.max() < VOCAB
    assert again.tobytes() == rng.integers(0, VOCAB, 4000, seed=ferrofix_seed, stream=1).tobytes()


@pytest.mark.unit
def test_initial_loss_is_near_uniform(corpus: np.ndarray, ferrofix_seed: int) -> None:
    _, losses = train(corpus, ferrofix_seed, steps=1)
    assert losses[0] == pytest.approx(np.log(VOCAB), rel=0.05)


@pytest.mark.integration
def test_training_reduces_loss(corpus: np.ndarray, ferrofix_seed: int) -> None:
    _, losses = train(corpus, ferrofix_seed, steps=50)
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.integration
def test_training_is_reproducible(corpus: np.ndarray, ferrofix_seed: int) -> None:
    first, _ = train(corpus, ferrofix_seed, steps=5)
    second, _ = train(corpus, ferrofix_seed, steps=5)
    assert first.tobytes() == second.tobytes()


@pytest.mark.slow
def test_converged_model_predicts_the_chain(corpus: np.ndarray, ferrofix_seed: int) -> None:
    weights, _ = train(corpus, ferrofix_seed, steps=400)
    predicted = weights.argmax(axis=1)
    assert predicted.tolist() == [(t + 1) % VOCAB for t in range(VOCAB)]
