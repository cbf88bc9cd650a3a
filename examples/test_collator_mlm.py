"""MLM collator: the shared collator contract; padding never masked; reproducible masks at
the configured rate."""

from __future__ import annotations

import pytest
import torch
from ferrofix.mixins import BaseCollatorTests

from .conftest import BLOCK_SIZE
from .tinylm.mlm import MLMCollator


class TestMLMCollator(BaseCollatorTests):
    @pytest.fixture
    def collator(self, simple_tokenizer):
        return MLMCollator(simple_tokenizer, BLOCK_SIZE, mask_prob=0.3, seed=0)

    @pytest.fixture
    def raw_examples(self, texts):
        return texts

    def test_masks_only_real_tokens_and_keeps_targets(self, collator, texts, simple_tokenizer):
        out = collator(texts)
        masked = out["input_ids"] == simple_tokenizer.mask_token_id
        assert not masked[out["attention_mask"] == 0].any()
        assert ((out["target_ids"] != -100) == masked).all()

    def test_same_seed_same_masks(self, simple_tokenizer, texts):
        first = MLMCollator(simple_tokenizer, BLOCK_SIZE, seed=7)(texts)
        second = MLMCollator(simple_tokenizer, BLOCK_SIZE, seed=7)(texts)
        assert torch.equal(first["input_ids"], second["input_ids"])

    def test_rate_is_close_to_mask_prob(self, simple_tokenizer):
        texts = [" ".join(str(i % 50) for i in range(16))] * 200
        out = MLMCollator(simple_tokenizer, BLOCK_SIZE, mask_prob=0.3, seed=1)(texts)
        rate = (out["target_ids"] != -100).float().mean().item()
        assert abs(rate - 0.3) < 0.02  # 3200 tokens: ~5 standard deviations
