"""Slow, obviously-correct float64 numpy reference of the causal-LM cross-entropy.

Follows the textbook definitions directly: shift by slicing copies, softcap, a stable
log-sum-exp, label smoothing as torch defines it (``(1 - ε)·CE + ε·mean_j(-log p_j)``),
z-loss ``z·lse²``, then the reduction. The gradient is derived by hand from the same
formulas and is checked against torch autograd in the tests.
"""

from __future__ import annotations

import numpy as np


def causal_lm_loss_and_grad(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    shift: bool = True,
    z_loss_scale: float = 0.0,
    softcap: float | None = None,
    label_smoothing: float = 0.0,
    num_items_in_batch: float | None = None,
) -> tuple[float | np.ndarray, np.ndarray, np.ndarray]:
    """Returns (loss, grad shaped like logits, lse per scored row as a flat array)."""
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    batched = x.ndim == 3
    if not batched:
        x, y = x[None], y[None]
    vocab = x.shape[-1]
    scored_x = x[:, :-1] if shift else x
    scored_y = y[:, 1:] if shift else y
    rows_shape = scored_y.shape
    c_in = scored_x.reshape(-1, vocab)
    targets = scored_y.reshape(-1)
    c = softcap * np.tanh(c_in / softcap) if softcap else c_in
    row_max = c.max(axis=1, keepdims=True)
    lse = (row_max + np.log(np.exp(c - row_max).sum(axis=1, keepdims=True)))[:, 0]
    valid = targets != ignore_index
    safe = np.where(valid, targets, 0)
    eps = label_smoothing
    picked = c[np.arange(len(safe)), safe]
    per_row = lse - (1 - eps) * picked - eps * c.mean(axis=1) + z_loss_scale * lse**2
    per_row = np.where(valid, per_row, 0.0)

    softmax = np.exp(c - lse[:, None])
    grad_c = softmax * (1 + 2 * z_loss_scale * lse)[:, None] - eps / vocab
    grad_c[np.arange(len(safe)), safe] -= 1 - eps
    grad_c[~valid] = 0.0
    if softcap:
        grad_c = grad_c * (1 - (c / softcap) ** 2)

    if reduction == "mean":
        divisor = num_items_in_batch if num_items_in_batch is not None else valid.sum()
        loss = per_row.sum() / divisor if divisor else 0.0
        scale = 1.0 / divisor if divisor else 0.0
    elif reduction == "sum":
        loss, scale = per_row.sum(), 1.0
    else:
        loss, scale = per_row.reshape(rows_shape), 1.0
    grad = np.zeros_like(x)
    grad_view = grad[:, :-1] if shift else grad
    grad_view[...] = (grad_c * scale).reshape(grad_view.shape)
    if not batched:
        grad = grad[0]
        if reduction == "none":
            loss = loss[0]
    return loss, grad, np.where(valid, lse, np.nan)
