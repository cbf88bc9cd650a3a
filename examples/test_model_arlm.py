"""ARLM model: the shared model contract plus causality and document isolation."""

from __future__ import annotations

import pytest
import torch
from ferrofix.assertions import assert_batch_independence, assert_causal, assert_close
from ferrofix.mixins import BaseModelTests

from .conftest import forward_runner


class TestARLMModel(BaseModelTests):
    @pytest.fixture
    def model(self, arlm):
        return arlm

    @pytest.fixture
    def run_forward(self, arlm, vocab_size, ferrofix_seed):
        return forward_runner(arlm, vocab_size, ferrofix_seed)

    def test_is_causal(self, model, vocab_size):
        ids = torch.randint(0, vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
        assert_causal(model, ids)

    def test_rows_are_independent(self, model, vocab_size):
        ids = torch.randint(0, vocab_size, (3, 8), generator=torch.Generator().manual_seed(1))
        assert_batch_independence(model, ids, index=1)

    def test_packed_documents_do_not_see_each_other(self, model):
        first, second = torch.tensor([[7, 8, 9]]), torch.tensor([[10, 11]])
        packed = torch.cat([first, second], dim=1)
        logits = model(
            packed,
            position_ids=torch.tensor([[0, 1, 2, 0, 1]]),
            document_ids=torch.tensor([[0, 0, 0, 1, 1]]),
        )
        assert_close(logits[:, 3:], model(second))
        assert_close(logits[:, :3], model(first))
