"""Numpy arrays in every memory layout read as the values they hold.

The native layer reads C-ordered data aligned to its item size; the Python layer must copy
anything else first: Fortran order (read as a slice it would be the transpose), big-endian
data, and contiguous data at an odd address (``np.frombuffer`` at an offset, a memory map
past an odd-sized header), which used to be refused as "must be C-contiguous". Each call
below is made on a plain array and on twins in those layouts, and must give identical
results.
"""

from __future__ import annotations

import numpy as np
import pytest
from ferrofix import assertions, ddpm, loss, noise, packing, tokenizers
from ferrofix.errors import ConfigError


def unaligned(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` starting one byte past an aligned address."""
    buffer = np.zeros(array.nbytes + 1, np.uint8)
    twin = np.frombuffer(buffer.data, array.dtype, array.size, offset=1).reshape(array.shape)
    twin[...] = array
    assert twin.flags.c_contiguous
    assert not twin.flags.aligned or array.itemsize == 1
    return twin


LAYOUTS = {
    "fortran": np.asfortranarray,
    "unaligned": unaligned,
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
}


def plain(value):
    if isinstance(value, dict) or hasattr(value, "keys"):
        return {key: plain(value[key]) for key in value}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return (value.dtype.newbyteorder("="), value.shape, np.ascontiguousarray(value).tolist())
    if isinstance(value, packing.Packing):
        return plain([value.bin_of_item, value.offset_in_bin, value.bin_offsets, value.items])
    if isinstance(value, packing.PackingReport):
        return [value.ok, value.num_violations]
    if isinstance(value, assertions.Comparison):
        return [value.rms, value.max_abs, value.max_index, value.non_finite]
    return value


rs = np.random.RandomState(0)
LOGITS = rs.rand(3, 5, 9).astype(np.float32)
LABELS = rs.randint(0, 9, (3, 5))
ROWS = rs.rand(6, 9).astype(np.float32)
ROW_LABELS = rs.randint(0, 9, 6)
IDS = rs.randint(7, 50, (3, 16))
BATCH = packing.pack_sequences([[5, 6, 7], [8, 9], [1, 2, 3, 4, 5]], 6)
TOKENIZER = tokenizers.SimpleTokenizer.for_numbers(50)


def check(key: str):
    return lambda array: packing.check_packing({**BATCH, key: array})


# name -> (call, the array passed in each layout)
CALLS = {
    "causal_lm_loss": (lambda x: loss.causal_lm_loss(x, LABELS), LOGITS),
    "causal_lm_loss rows": (
        lambda x: loss.causal_lm_loss(x, ROW_LABELS, shift=False, reduction="none"),
        ROWS,
    ),
    "causal_lm_loss labels": (lambda y: loss.causal_lm_loss(LOGITS, y), LABELS),
    "causal_lm_loss_and_grad": (
        lambda x: loss.causal_lm_loss_and_grad(x, ROW_LABELS, shift=False),
        ROWS,
    ),
    "compare_tensors": (
        lambda x: assertions.compare_tensors(x, ROWS + 1e-3 * np.arange(54).reshape(6, 9)),
        ROWS,
    ),
    "compare_tensors float16": (
        lambda x: assertions.compare_tensors(x, ROWS.astype(np.float16)),
        ROWS.astype(np.float16),
    ),
    "mask_tokens": (lambda ids: noise.mask_tokens(ids, 0.5, mask_token_id=2, seed=0), IDS),
    "mask_tokens probabilities": (
        lambda p: noise.mask_tokens(IDS, p, mask_token_id=2, seed=0),
        rs.rand(3, 16),
    ),
    "uniform_corrupt": (lambda ids: noise.uniform_corrupt(ids, 0.5, vocab_size=50, seed=0), IDS),
    "schedule": (noise.CosineSchedule(), rs.rand(3, 4)),
    "schedule float32": (noise.LogLinearSchedule(), rs.rand(3, 4).astype(np.float32)),
    "pack": (lambda n: packing.pack(n, 10), np.array([3, 2, 3, 7, 1, 9])),
    "pack_sequences": (
        lambda s: packing.pack_sequences((s, np.array([3, 2, 5])), 6),
        np.arange(1, 11),
    ),
    "check_packing input_ids": (check("input_ids"), BATCH["input_ids"]),
    "check_packing labels": (check("labels"), BATCH["labels"]),
    "check_packing position_ids": (check("position_ids"), BATCH["position_ids"]),
    "check_packing document_ids": (check("document_ids"), BATCH["document_ids"]),
    "check_packing attention_mask": (check("attention_mask"), BATCH["attention_mask"]),
    "check_packing document_starts": (check("document_starts"), BATCH["document_starts"]),
    "block_attention_mask": (packing.block_attention_mask, BATCH["document_ids"]),
    "cu_seqlens_from_position_ids": (
        packing.cu_seqlens_from_position_ids,
        BATCH["position_ids"],
    ),
    "decode": (TOKENIZER.decode, np.array([7, 8, 9, 30])),
    "batch_decode": (TOKENIZER.batch_decode, IDS),
    "pad": (lambda ids: TOKENIZER.pad({"input_ids": ids}, return_tensors="np"), IDS),
    "add_noise": (
        lambda x: ddpm.DDPMSchedule(10).add_noise(x, np.zeros_like(ROWS), [1, 2, 3, 4, 5, 6]),
        ROWS,
    ),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(CALLS))
def test_every_layout_reads_as_its_values(name: str, layout: str) -> None:
    call, value = CALLS[name]
    twin = LAYOUTS[layout](value)
    assert plain(call(twin)) == plain(call(value))


def test_an_in_place_gradient_needs_aligned_c_ordered_memory() -> None:
    with pytest.raises(ConfigError, match="logits: must be aligned to its element size"):
        loss.causal_lm_loss_and_grad(unaligned(ROWS), ROW_LABELS, shift=False, in_place=True)
    with pytest.raises(ConfigError, match="C-contiguous"):
        loss.causal_lm_loss_and_grad(
            np.asfortranarray(ROWS), ROW_LABELS, shift=False, in_place=True
        )
