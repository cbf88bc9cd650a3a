"""Slow, obviously-correct references for packing: the quadratic fit loops, L2 from its
definition, and a packed batch built token by token."""

from __future__ import annotations

import numpy as np

DECREASING = {"ffd", "bfd", "wfd"}


def pack(lengths: list[int], capacity: int, strategy: str) -> tuple[list[int], list[int]]:
    """(bin of each item, offset of each item) by scanning every open bin per item."""
    order = list(range(len(lengths)))
    if strategy in DECREASING:
        order.sort(key=lambda i: (-lengths[i], i))
    free: list[int] = []
    bin_of = [0] * len(lengths)
    offset = [0] * len(lengths)
    for i in order:
        size = lengths[i]
        fitting = [b for b in range(len(free)) if free[b] >= size]
        if strategy == "next_fit":
            fitting = [b for b in fitting if b == len(free) - 1]
        if not fitting:
            free.append(capacity)
            chosen = len(free) - 1
        elif strategy in ("first_fit", "ffd", "next_fit"):
            chosen = fitting[0]
        elif strategy in ("best_fit", "bfd"):
            chosen = min(fitting, key=lambda b: (free[b], b))
        else:  # wfd: the least-loaded bin that fits
            chosen = min(fitting, key=lambda b: (-free[b], b))
        bin_of[i] = chosen
        offset[i] = capacity - free[chosen]
        free[chosen] -= size
    return bin_of, offset


def lower_bound_l2(lengths: list[int], capacity: int) -> int:
    """Martello-Toth L2 from its definition, trying every alpha in [0, C/2]."""
    best = -(-sum(lengths) // capacity)
    for alpha in range(capacity // 2 + 1):
        j1 = sum(1 for w in lengths if w > capacity - alpha)
        j2 = [w for w in lengths if 2 * w > capacity and w <= capacity - alpha]
        j3 = sum(w for w in lengths if alpha <= w and 2 * w <= capacity)
        room = len(j2) * capacity - sum(j2)
        best = max(best, j1 + len(j2) + max(0, -(-(j3 - room) // capacity)))
    return best


def packed_batch(
    sequences: list[list[int]],
    bins: list[list[int]],
    offsets: list[int],
    capacity: int,
    *,
    pad_token_id: int = 0,
    ignore_index: int = -100,
    labels: str = "aligned",
) -> dict[str, np.ndarray]:
    """The batch a packing describes, written one token at a time."""
    rows = len(bins)
    out = {
        "input_ids": np.full((rows, capacity), pad_token_id, np.int64),
        "labels": np.full((rows, capacity), ignore_index, np.int64),
        "position_ids": np.zeros((rows, capacity), np.int64),
        "document_ids": np.full((rows, capacity), -1, np.int64),
        "attention_mask": np.zeros((rows, capacity), np.int64),
    }
    cu = [0]
    for row, members in enumerate(bins):
        for doc in members:
            tokens = sequences[doc]
            for k, token in enumerate(tokens):
                p = offsets[doc] + k
                out["input_ids"][row, p] = token
                out["position_ids"][row, p] = k
                out["document_ids"][row, p] = doc
                out["attention_mask"][row, p] = 1
                if labels == "aligned":
                    label = ignore_index if k == 0 else token
                else:
                    label = tokens[k + 1] if k + 1 < len(tokens) else ignore_index
                out["labels"][row, p] = label
            cu.append(cu[-1] + len(tokens))
    out["cu_seqlens"] = np.array(cu, np.int32)
    return out
