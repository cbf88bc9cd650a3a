"""MLM predictor: fills exactly the mask positions, never with a special token."""

from __future__ import annotations

import pytest
import torch

from .tinylm.mlm import MLMPredictor


@pytest.fixture
def predictor(mlm, simple_tokenizer):
    return MLMPredictor(
        mlm.eval(), simple_tokenizer.mask_token_id, len(simple_tokenizer.all_special_ids)
    )


def test_fills_only_the_masks(predictor, simple_tokenizer):
    mask = simple_tokenizer.mask_token_id
    ids = torch.tensor([[8, mask, 10, mask], [mask, 9, 9, 9]])
    filled = predictor.fill(ids)
    keep = ids != mask
    assert torch.equal(filled[keep], ids[keep])
    assert (filled[~keep] >= len(simple_tokenizer.all_special_ids)).all()


def test_fill_is_deterministic(predictor, simple_tokenizer):
    ids = torch.tensor([[8, simple_tokenizer.mask_token_id, 10]])
    assert torch.equal(predictor.fill(ids), predictor.fill(ids))
