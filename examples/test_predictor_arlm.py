"""ARLM predictor: greedy generation's shape, stopping and determinism, and a GPU run."""

from __future__ import annotations

import pytest
import torch
from ferrofix.assertions import assert_deterministic

from .tinylm.arlm import ARLMPredictor


@pytest.fixture
def predictor(arlm, simple_tokenizer):
    return ARLMPredictor(arlm.eval(), simple_tokenizer.eos_token_id)


def test_generation_appends_tokens_up_to_the_limit(predictor, simple_tokenizer):
    prompt = simple_tokenizer(["1 2", "3 4"], return_tensors="pt")["input_ids"]
    out = predictor.generate(prompt, max_new_tokens=5)
    assert out.shape[0] == 2
    assert 2 < out.shape[1] <= 7
    assert torch.equal(out[:, :2], prompt)


def test_rows_that_finished_keep_emitting_eos(arlm):
    prompt = torch.tensor([[8, 9], [10, 11]])
    first = arlm.eval()(prompt)[:, -1].argmax(-1)
    # Call row 0's first prediction "EOS": row 0 is done after one step and stays at EOS.
    out = ARLMPredictor(arlm, int(first[0])).generate(prompt, max_new_tokens=4)
    assert (out[0, 2:] == first[0]).all()


def test_generation_is_deterministic(predictor):
    assert_deterministic(predictor.generate, torch.tensor([[8, 9, 10]]), 6)


@pytest.mark.gpu
def test_generates_the_same_on_gpu(arlm, device):
    prompt = torch.tensor([[8, 9, 10]])
    on_cpu = ARLMPredictor(arlm.eval(), 3).generate(prompt, max_new_tokens=4)
    on_gpu = ARLMPredictor(arlm.to(device), 3).generate(prompt.to(device), max_new_tokens=4)
    assert torch.equal(on_gpu.cpu(), on_cpu)
