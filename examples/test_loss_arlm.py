"""ARLM loss: the shared loss contract, agreement with torch's cross-entropy, packed
batches, and (slow) overfitting one batch."""

from __future__ import annotations

import pytest
import torch
from ferrofix.assertions import assert_can_overfit, assert_close
from ferrofix.mixins import BaseLossTests

from .conftest import BLOCK_SIZE
from .tinylm.arlm import ARLMCollator, ARLMLoss, PackedARLMCollator


@pytest.fixture
def batch(simple_tokenizer, texts):
    return ARLMCollator(simple_tokenizer, BLOCK_SIZE)(texts)


class TestARLMLoss(BaseLossTests):
    @pytest.fixture
    def loss_fn(self, arlm):
        return ARLMLoss(arlm)

    def test_matches_torch_cross_entropy(self, loss_fn, batch):
        logits = loss_fn.model(batch["input_ids"], batch["attention_mask"])
        expected = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100
        )
        assert_close(loss_fn(batch)["loss"], expected)

    def test_packed_batches_train_too(self, loss_fn, simple_tokenizer, texts):
        packed = PackedARLMCollator(simple_tokenizer, BLOCK_SIZE)(texts)
        loss = loss_fn(packed)["loss"]
        assert torch.isfinite(loss)
        loss.backward()


@pytest.mark.slow
def test_can_overfit_one_batch(arlm, batch):
    assert_can_overfit(arlm, batch, lambda model, b: ARLMLoss(model)(b)["loss"], steps=200)
