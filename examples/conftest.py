"""Fixtures of the example suite.

ferrofix's shared fixtures are imported explicitly (the pattern for suites that run with
plugin autoloading disabled; with the plugin loaded they are the same fixtures); the suite
adds one model per family, built from ``tiny_model_kwargs`` and seeded per test.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from ferrofix.fixtures import (  # noqa: F401  (fixtures are used by name)
    device,
    ferrofix_seed,
    loglinear_schedule,
    simple_tokenizer,
    small_vocab,
    tiny_model_kwargs,
    vocab_size,
)

from .tinylm.arlm import ARLM
from .tinylm.mdlm import MDLM
from .tinylm.mlm import MLM

BLOCK_SIZE = 16


@pytest.fixture
def texts() -> list[str]:
    """Short documents of number words; no two start alike, so a model can memorise them."""
    return ["1 2 3 4 5", "6 7 8", "9 10 11 12 13 14 15", "16 17", "18 19 20 21", "22"]


def _build(cls: type, kwargs: dict, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(**kwargs)


@pytest.fixture
def arlm(tiny_model_kwargs: dict, ferrofix_seed: int) -> ARLM:
    return _build(ARLM, tiny_model_kwargs, ferrofix_seed)


@pytest.fixture
def mlm(tiny_model_kwargs: dict, ferrofix_seed: int) -> MLM:
    return _build(MLM, tiny_model_kwargs, ferrofix_seed)


@pytest.fixture
def mdlm(tiny_model_kwargs: dict, ferrofix_seed: int) -> MDLM:
    return _build(MDLM, tiny_model_kwargs, ferrofix_seed)


def forward_runner(model: torch.nn.Module, vocab_size: int, seed: int) -> Callable:
    """The ``run_forward`` BaseModelTests calls: random ids, optionally half-masked rows."""

    def run(batch_size: int = 2, seq_len: int = 16, partial_mask: bool = False) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)
        mask = torch.ones(batch_size, seq_len, dtype=torch.long)
        if partial_mask:
            mask[:, seq_len // 2 :] = 0
        return model(ids, mask)

    return run
