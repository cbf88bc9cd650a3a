"""MDLM loss: the shared loss contract, the weighted formula, and (slow) overfitting."""

from __future__ import annotations

import pytest
import torch
from ferrofix.assertions import assert_can_overfit, assert_close
from ferrofix.mixins import BaseLossTests

from .conftest import BLOCK_SIZE
from .tinylm.mdlm import MDLMCollator, MDLMLoss


@pytest.fixture
def batch(simple_tokenizer, loglinear_schedule, texts):
    return MDLMCollator(simple_tokenizer, loglinear_schedule, BLOCK_SIZE, seed=5)(texts)


class TestMDLMLoss(BaseLossTests):
    @pytest.fixture
    def loss_fn(self, mdlm):
        return MDLMLoss(mdlm)

    def test_weights_each_row_by_its_loss_weight(self, loss_fn, batch):
        logits = loss_fn.model(batch["input_ids"], batch["attention_mask"])
        total = torch.zeros(())
        for row in range(len(logits)):
            for pos in range(logits.shape[1]):
                target = int(batch["target_ids"][row, pos])
                if target != -100:
                    nll = -logits[row, pos].log_softmax(-1)[target]
                    total = total + batch["loss_weight"][row] * nll
        expected = total / batch["attention_mask"].sum()
        assert_close(loss_fn(batch)["loss"], expected)

    def test_loglinear_weight_is_one_over_t(self, batch):
        assert_close(batch["loss_weight"], 1 / batch["t"], preset="fp32")


@pytest.mark.slow
def test_can_overfit_one_batch(mdlm, simple_tokenizer, loglinear_schedule):
    texts = ["1 2 3 4 5", "6 7 8 9", "10 11 12 13 14 15", "16 17 18 19"]
    batch = MDLMCollator(simple_tokenizer, loglinear_schedule, BLOCK_SIZE, seed=1)(texts, t=0.5)
    # A row masked entirely carries no information (attention is relative), so its targets
    # cannot be learnt: make sure every row keeps a visible token.
    visible = (batch["target_ids"] == -100) & (batch["attention_mask"] == 1)
    assert visible.any(1).all()
    assert_can_overfit(mdlm, batch, lambda model, b: MDLMLoss(model)(b)["loss"], steps=300)
