"""MDLM predictor: sampling unmasks every position with ordinary tokens, deterministically."""

from __future__ import annotations

import pytest
import torch
from ferrofix.assertions import assert_deterministic

from .tinylm.mdlm import MDLMPredictor


@pytest.fixture
def predictor(mdlm, simple_tokenizer):
    specials = len(simple_tokenizer.all_special_ids)
    return MDLMPredictor(mdlm.eval(), simple_tokenizer.mask_token_id, specials, steps=4)


def test_samples_have_no_masks_left(predictor, simple_tokenizer):
    out = predictor.sample(batch_size=3, length=10)
    assert out.shape == (3, 10)
    assert (out >= len(simple_tokenizer.all_special_ids)).all()


def test_one_step_unmasks_everything_at_once(mdlm, simple_tokenizer):
    specials = len(simple_tokenizer.all_special_ids)
    out = MDLMPredictor(mdlm.eval(), simple_tokenizer.mask_token_id, specials, 1).sample(2, 5)
    assert not (out == simple_tokenizer.mask_token_id).any()


def test_sampling_is_deterministic(predictor):
    assert_deterministic(predictor.sample, 2, 8)


def test_decodes_to_vocabulary_words(predictor, simple_tokenizer):
    text = simple_tokenizer.decode(predictor.sample(1, 6)[0])
    assert all(word.isdecimal() for word in text.split())
    assert isinstance(torch.__version__, str)
