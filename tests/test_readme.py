"""The README's Python examples run as written, given example values for the names they
take from the reader's code (logits, documents, ...), so the README cannot drift from the
API. Claims written as results in their comments are checked too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ferrofix import groups

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def reader_values() -> dict[str, object]:
    """What the examples assume the reader already has."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=gen, requires_grad=True)
    labels = torch.randint(0, 11, (2, 5), generator=gen)
    documents = [list(range(1, n + 1)) for n in (300, 1500, 40, 2048, 7)]
    reference = torch.randn(4, 8, generator=gen)
    return {
        "logits": logits,
        "labels": labels,
        "logits_np": logits.detach().numpy().copy(),
        "labels_np": labels.numpy().copy(),
        "lengths": np.array([3000, 500, 4096, 1200, 80]),
        "documents": documents,
        "batch_size": 4,
        "input_ids": torch.randint(7, 57, (4, 16), generator=gen),
        "mask_id": 2,
        "pad_id": 0,
        "bos_id": 4,
        "reference_fp32": reference,
        "output_bf16": reference.bfloat16().float(),
        "texts": ["hello world", "world"],
        "corpus": ["hello world, hello tokenizers"] * 50,
    }


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 9


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_each_python_example_runs(block: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that save write here
    monkeypatch.setattr(groups, "_REGISTRY", {})  # the conftest example registers models
    exec(compile(block, str(README), "exec"), reader_values())


def test_the_tokenizer_example_gives_the_ids_its_comment_says() -> None:
    block = next(b for b in BLOCKS if "tok.encode(" in b)
    claimed = re.search(r'tok\.encode\("hello world"\)\s*#\s*(\[[\d, ]+\])', block)
    assert claimed, "the example's comment states the ids"
    from ferrofix.tokenizers import SimpleTokenizer

    tok = SimpleTokenizer(["hello", "world"], add_bos=True, add_eos=True)
    assert tok.encode("hello world") == ast.literal_eval(claimed.group(1))
