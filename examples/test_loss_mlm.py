"""MLM loss: the shared loss contract; only masked positions count."""

from __future__ import annotations

import pytest
import torch
from ferrofix.assertions import assert_close
from ferrofix.mixins import BaseLossTests

from .conftest import BLOCK_SIZE
from .tinylm.mlm import MLMCollator, MLMLoss


@pytest.fixture
def batch(simple_tokenizer, texts):
    return MLMCollator(simple_tokenizer, BLOCK_SIZE, mask_prob=0.5, seed=3)(texts)


class TestMLMLoss(BaseLossTests):
    @pytest.fixture
    def loss_fn(self, mlm):
        return MLMLoss(mlm)

    def test_is_the_mean_over_masked_positions(self, loss_fn, batch):
        logits = loss_fn.model(batch["input_ids"], batch["attention_mask"])
        masked = batch["target_ids"] != -100
        log_probs = logits.log_softmax(-1)
        picked = log_probs.gather(-1, batch["target_ids"].clamp(min=0)[..., None])[..., 0]
        assert_close(loss_fn(batch)["loss"], -picked[masked].mean())

    def test_nothing_masked_gives_zero_with_a_gradient(self, loss_fn, batch):
        unmasked = {**batch, "target_ids": torch.full_like(batch["target_ids"], -100)}
        loss = loss_fn(unmasked)["loss"]
        assert loss.item() == 0.0
        assert loss.requires_grad
