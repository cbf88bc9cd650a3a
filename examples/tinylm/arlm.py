"""Autoregressive LM: causal model, fused causal-LM loss, padded and packed collators, greedy
generation."""

from __future__ import annotations

from typing import Any

import torch
from ferrofix.loss import causal_lm_loss
from ferrofix.packing import pack_sequences

from .backbone import TinyTransformer

IGNORE_INDEX = -100


class ARLM(TinyTransformer):
    causal = True


def _forward(model: ARLM, batch: dict[str, Any]) -> torch.Tensor:
    return model(
        batch["input_ids"],
        batch.get("attention_mask"),
        batch.get("position_ids"),
        batch.get("document_ids"),
    )


class ARLMLoss:
    """Next-token cross-entropy; ``labels`` are aligned with the inputs (shifted inside)."""

    def __init__(self, model: ARLM) -> None:
        self.model = model

    def __call__(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        logits = _forward(self.model, batch)
        return {"loss": causal_lm_loss(logits, batch["labels"], ignore_index=IGNORE_INDEX)}


class ARLMCollator:
    """Texts -> right-padded ``input_ids``, ``attention_mask`` and ``labels`` (padding
    ignored), at most ``block_size`` tokens."""

    def __init__(self, tokenizer: Any, block_size: int) -> None:
        self.tokenizer, self.block_size = tokenizer, block_size

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        out = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.block_size, return_tensors="pt"
        )
        labels = out["input_ids"].masked_fill(out["attention_mask"] == 0, IGNORE_INDEX)
        return {**out, "labels": labels}


class PackedARLMCollator:
    """Texts -> documents packed into rows of ``block_size`` (best-fit decreasing), with
    position ids restarting and attention confined to each document."""

    def __init__(self, tokenizer: Any, block_size: int) -> None:
        self.tokenizer, self.block_size = tokenizer, block_size

    def documents(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.block_size)["input_ids"]

    def __call__(self, texts: list[str]) -> dict[str, Any]:
        return pack_sequences(
            self.documents(texts),
            self.block_size,
            pad_token_id=self.tokenizer.pad_token_id,
            ignore_index=IGNORE_INDEX,
            return_tensors="pt",
        )


class ARLMPredictor:
    """Greedy continuation until every row has produced ``eos_token_id``."""

    def __init__(self, model: ARLM, eos_token_id: int) -> None:
        self.model, self.eos_token_id = model, eos_token_id

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        ids = input_ids
        done = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            if ids.shape[1] >= self.model.max_length:
                break
            following = self.model(ids)[:, -1].argmax(-1)
            following = following.masked_fill(done, self.eos_token_id)
            ids = torch.cat([ids, following[:, None]], dim=1)
            done |= following == self.eos_token_id
            if bool(done.all()):
                break
        return ids
