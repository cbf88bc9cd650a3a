"""MDLM model: the shared model contract; mask tokens change the predictions."""

from __future__ import annotations

import pytest
import torch
from ferrofix.mixins import BaseModelTests

from .conftest import forward_runner


class TestMDLMModel(BaseModelTests):
    @pytest.fixture
    def model(self, mdlm):
        return mdlm

    @pytest.fixture
    def run_forward(self, mdlm, vocab_size, ferrofix_seed):
        return forward_runner(mdlm, vocab_size, ferrofix_seed)

    def test_masking_a_token_changes_its_neighbours(self, model, simple_tokenizer):
        ids = torch.tensor([[8, 9, 10, 11]])
        masked = ids.clone()
        masked[0, 2] = simple_tokenizer.mask_token_id
        assert not torch.allclose(model(ids)[:, 1], model(masked)[:, 1])
