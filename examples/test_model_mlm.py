"""MLM model: the shared model contract; bidirectional attention."""

from __future__ import annotations

import pytest
import torch
from ferrofix.mixins import BaseModelTests

from .conftest import forward_runner


class TestMLMModel(BaseModelTests):
    @pytest.fixture
    def model(self, mlm):
        return mlm

    @pytest.fixture
    def run_forward(self, mlm, vocab_size, ferrofix_seed):
        return forward_runner(mlm, vocab_size, ferrofix_seed)

    def test_sees_both_directions(self, model):
        ids = torch.tensor([[8, 9, 10, 11]])
        changed = ids.clone()
        changed[0, -1] = 12
        assert not torch.allclose(model(ids)[:, 0], model(changed)[:, 0])

    def test_padding_does_not_change_real_tokens(self, model):
        ids = torch.tensor([[8, 9, 10, 0, 0]])
        mask = torch.tensor([[1, 1, 1, 0, 0]])
        torch.testing.assert_close(model(ids, mask)[:, :3], model(ids[:, :3]))
