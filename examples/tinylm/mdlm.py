"""Masked diffusion LM (MDLM): a noise schedule sets each row's masking rate at a random time
t, the loss weights masked-token cross-entropy by σ'(t)/expm1(σ(t)), sampling unmasks the
most confident tokens step by step."""

from __future__ import annotations

import math
from typing import Any

import torch
from ferrofix.noise import mask_tokens

from .backbone import TinyTransformer

IGNORE_INDEX = -100


class MDLM(TinyTransformer):
    causal = False


class MDLMCollator:
    """Texts -> noised ``input_ids`` (row i masked with probability ``1 - α(t_i)``),
    ``target_ids`` (originals at masked positions, ``-100`` elsewhere), ``attention_mask``,
    ``t`` and ``loss_weight``. Batch k uses seed ``seed + k``; ``t`` fixes every row's time
    (evaluation at a given noise level) instead of sampling it."""

    def __init__(self, tokenizer: Any, schedule: Any, block_size: int, seed: int = 0) -> None:
        self.tokenizer, self.schedule, self.block_size = tokenizer, schedule, block_size
        self.seed, self.batches = seed, 0

    def __call__(self, texts: list[str], t: float | None = None) -> dict[str, torch.Tensor]:
        out = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.block_size, return_tensors="pt"
        )
        seed = self.seed + self.batches
        self.batches += 1
        if t is None:
            t = torch.as_tensor(self.schedule.sample_t(len(texts), seed=seed), dtype=torch.float64)
        else:
            t = torch.full((len(texts),), float(t), dtype=torch.float64)
        original = out["input_ids"]
        noised, masked = mask_tokens(
            original,
            self.schedule.mask_probability(t),
            self.tokenizer.mask_token_id,
            seed=seed,
            protect=out["attention_mask"] == 0,
        )
        return {
            "input_ids": noised,
            "attention_mask": out["attention_mask"],
            "target_ids": original.masked_fill(~masked, IGNORE_INDEX),
            "t": t.float(),
            "loss_weight": self.schedule.loss_weight(t).float(),
        }


class MDLMLoss:
    """Σ over masked tokens of loss_weight(t_row) · CE, divided by the number of real tokens."""

    def __init__(self, model: MDLM) -> None:
        self.model = model

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.model(batch["input_ids"], batch["attention_mask"])
        targets = batch["target_ids"]
        masked = targets != IGNORE_INDEX
        ce = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), targets.clamp(min=0), reduction="none"
        )
        weighted = (ce * masked * batch["loss_weight"][:, None]).sum()
        return {"loss": weighted / batch["attention_mask"].sum().clamp(min=1)}


class MDLMPredictor:
    """Start from all mask tokens; at each of ``steps`` steps unmask the most confident
    ``ceil(remaining / steps_left)`` positions per row with their argmax (never special)."""

    def __init__(self, model: MDLM, mask_token_id: int, num_special: int, steps: int) -> None:
        self.model, self.mask_token_id = model, mask_token_id
        self.num_special, self.steps = num_special, steps

    @torch.no_grad()
    def sample(self, batch_size: int, length: int) -> torch.Tensor:
        device = next(self.model.parameters()).device
        ids = torch.full((batch_size, length), self.mask_token_id, device=device)
        for step in range(self.steps):
            masked = ids == self.mask_token_id
            remaining = int(masked.sum(1).max())
            if remaining == 0:
                break
            logits = self.model(ids)
            logits[..., : self.num_special] = float("-inf")
            confidence, choice = logits.softmax(-1).max(-1)
            confidence = confidence.masked_fill(~masked, -1.0)
            k = math.ceil(remaining / (self.steps - step))
            top = confidence.topk(k, dim=1).indices
            chosen = torch.zeros_like(masked).scatter(1, top, True) & masked
            ids = torch.where(chosen, choice, ids)
        return ids
