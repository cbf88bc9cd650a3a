"""ARLM collators: the shared collator contract, ignored padding, valid packing."""

from __future__ import annotations

import pytest
from ferrofix.mixins import BaseCollatorTests
from ferrofix.packing import assert_valid_packing

from .conftest import BLOCK_SIZE
from .tinylm.arlm import ARLMCollator, PackedARLMCollator


class TestARLMCollator(BaseCollatorTests):
    target_key = "labels"

    @pytest.fixture
    def collator(self, simple_tokenizer):
        return ARLMCollator(simple_tokenizer, BLOCK_SIZE)

    @pytest.fixture
    def raw_examples(self, texts):
        return texts

    def test_padding_is_ignored_by_the_loss(self, collator, texts):
        out = collator(texts)
        assert (out["labels"][out["attention_mask"] == 0] == -100).all()
        assert (
            out["labels"][out["attention_mask"] == 1]
            == out["input_ids"][out["attention_mask"] == 1]
        ).all()


def test_packed_batches_are_valid(simple_tokenizer, texts):
    collator = PackedARLMCollator(simple_tokenizer, BLOCK_SIZE)
    batch = collator(texts)
    assert_valid_packing(batch, collator.documents(texts), capacity=BLOCK_SIZE)
    assert batch["input_ids"].shape[1] == BLOCK_SIZE
    assert batch["input_ids"].shape[0] < len(texts)  # packing saved rows
