"""MDLM collator: the shared collator contract; masking follows each row's time."""

from __future__ import annotations

import pytest
import torch
from ferrofix.mixins import BaseCollatorTests

from .conftest import BLOCK_SIZE
from .tinylm.mdlm import MDLMCollator


class TestMDLMCollator(BaseCollatorTests):
    @pytest.fixture
    def collator(self, simple_tokenizer, loglinear_schedule):
        return MDLMCollator(simple_tokenizer, loglinear_schedule, BLOCK_SIZE, seed=0)

    @pytest.fixture
    def raw_examples(self, texts):
        return texts

    def test_times_lie_in_eps_to_one(self, collator, texts):
        t = collator(texts)["t"]
        assert ((t >= 1e-3) & (t <= 1)).all()

    def test_masking_rate_follows_the_schedule(self, simple_tokenizer, loglinear_schedule):
        texts = [" ".join(str(i % 50) for i in range(16))] * 400
        out = MDLMCollator(simple_tokenizer, loglinear_schedule, BLOCK_SIZE, seed=2)(texts)
        masked = (out["target_ids"] != -100).float().mean(1)
        expected = loglinear_schedule.mask_probability(out["t"].double()).float()
        assert (masked - expected).abs().mean() < 0.1
        assert torch.corrcoef(torch.stack([masked, expected]))[0, 1] > 0.9

    def test_consecutive_batches_differ_but_runs_repeat(
        self, simple_tokenizer, loglinear_schedule, texts
    ):
        first = MDLMCollator(simple_tokenizer, loglinear_schedule, BLOCK_SIZE, seed=4)
        second = MDLMCollator(simple_tokenizer, loglinear_schedule, BLOCK_SIZE, seed=4)
        a, b = first(texts), first(texts)
        assert not torch.equal(a["t"], b["t"])
        assert torch.equal(second(texts)["input_ids"], a["input_ids"])
