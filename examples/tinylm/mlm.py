"""Masked LM: bidirectional model, a fixed masking rate drawn with ferrofix's deterministic
forward process, cross-entropy on the masked positions, mask filling."""

from __future__ import annotations

from typing import Any

import torch
from ferrofix.noise import mask_tokens

from .backbone import TinyTransformer

IGNORE_INDEX = -100


class MLM(TinyTransformer):
    causal = False


class MLMCollator:
    """Texts -> ``input_ids`` with ``mask_prob`` of the real tokens replaced by the mask
    token, ``target_ids`` holding the originals there (``-100`` elsewhere). Batch k uses
    seed ``seed + k``, so a run is reproducible batch by batch."""

    def __init__(self, tokenizer: Any, block_size: int, mask_prob: float = 0.15, seed: int = 0):
        self.tokenizer, self.block_size = tokenizer, block_size
        self.mask_prob, self.seed, self.batches = mask_prob, seed, 0

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        out = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.block_size, return_tensors="pt"
        )
        original = out["input_ids"]
        noised, masked = mask_tokens(
            original,
            self.mask_prob,
            self.tokenizer.mask_token_id,
            seed=self.seed + self.batches,
            protect=out["attention_mask"] == 0,
        )
        self.batches += 1
        targets = original.masked_fill(~masked, IGNORE_INDEX)
        return {"input_ids": noised, "attention_mask": out["attention_mask"], "target_ids": targets}


class MLMLoss:
    """Mean cross-entropy over the masked positions (0 with a gradient when none is masked)."""

    def __init__(self, model: MLM) -> None:
        self.model = model

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.model(batch["input_ids"], batch.get("attention_mask"))
        targets = batch["target_ids"]
        if not bool((targets != IGNORE_INDEX).any()):
            return {"loss": logits.sum() * 0.0}
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX
        )
        return {"loss": loss}


class MLMPredictor:
    """Replace every mask token by the model's most likely token (never a special one)."""

    def __init__(self, model: MLM, mask_token_id: int, num_special: int) -> None:
        self.model, self.mask_token_id, self.num_special = model, mask_token_id, num_special

    @torch.no_grad()
    def fill(self, input_ids: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids)
        logits[..., : self.num_special] = float("-inf")
        return torch.where(input_ids == self.mask_token_id, logits.argmax(-1), input_ids)
