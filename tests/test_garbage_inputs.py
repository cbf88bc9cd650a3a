"""Every public entry point, fed every pair of a pool of wrong-kind values, raises one of
ferrofix's errors (or returns): never a bare TypeError, ValueError, AttributeError or
MemoryError from numpy, torch or Python underneath, which would not name the argument."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from ferrofix import assertions, ddpm, loss, noise, packing, parallel, rng, seeding, tokenizers
from ferrofix.errors import FerrofixError

SIMPLE = tokenizers.SimpleTokenizer.for_numbers(10)
BYTE = tokenizers.ByteTokenizer()

# Wrong kinds, edge sizes and the shapes that trip numpy: ragged lists, 0-d arrays and
# tensors, non-contiguous views, tensors numpy cannot view (behind torch's neg bit, sparse,
# on the meta device, float8), complex and uint16 tensors, bools, NaN, huge ints,
# unhashable and non-iterable objects.
POOL = [
    None, 0, 1, -1, 3, 2**40, 0.5, float("nan"), "x", "1 2", b"x", True, np.int64(3),
    np.float32(0.5), [], [1, 2], [[1, 2], [3]], [[1, 2], [3, 4]], ["1", "2"], [1.5], [None],
    {"input_ids": [1]}, (1, 2), np.array([]), np.array([1, 2, 3]), np.array([[1, 2], [3, 4]]),
    np.array([0.1, 0.9]), np.array([True, False]), np.array(["a"]),
    np.zeros((2, 3, 4), np.float32), np.array(3), np.arange(6).reshape(2, 3)[:, ::2],
    torch.tensor([1, 2]), torch.tensor([[0.1, 0.2]]), torch.zeros(2, 3, 4), torch.tensor(True),
    torch.empty(0), torch._neg_view(torch.tensor([-1, -2])),
    torch._neg_view(torch.tensor([[-0.1, -0.2]])), torch.tensor([1, 2]).to_sparse(),
    torch.empty(2, 3, device="meta"), torch.tensor([1.0, 2.0]).to(torch.float8_e4m3fn),
    torch.tensor([1 + 2j]), object(), {1, 2}, {"a": 1}, slice(1),
    # torch before 2.3 has no uint16 tensors.
    *([torch.tensor([1, 2], dtype=torch.uint16)] if hasattr(torch, "uint16") else []),
]  # fmt: skip

LOGITS = np.zeros((1, 3, 4), np.float32)
LABELS = np.array([[1, 2, 3]])
BATCH = {"input_ids": np.zeros((1, 2), np.int64), "document_ids": np.zeros((1, 2), np.int64)}
MODEL = torch.nn.Linear(2, 2)

ENTRY_POINTS = {
    "pack": lambda a, b: packing.pack(a, b),
    "pack options": lambda a, b: packing.pack([1, 2], 4, strategy=a, overflow=b),
    "pack_sequences": lambda a, b: packing.pack_sequences(a, b),
    "pack_sequences options": lambda a, b: packing.pack_sequences(
        [[1, 2]], 4, pad_token_id=a, labels=b
    ),
    "check_packing": lambda a, b: packing.check_packing(a, b),
    "check_packing arrays": lambda a, b: packing.check_packing({"input_ids": a, "position_ids": b}),
    "block_attention_mask": lambda a, b: packing.block_attention_mask(a, b),
    "make_attention_mask": lambda a, b: packing.make_attention_mask(a, b),
    "make_attention_mask kind": lambda a, b: packing.make_attention_mask(2, 3, kind=a, lengths=b),
    "position_ids_from_document_starts": packing.position_ids_from_document_starts,
    "document_starts_from_position_ids": lambda a, b: packing.document_starts_from_position_ids(a),
    "cu_seqlens_from_position_ids": lambda a, b: packing.cu_seqlens_from_position_ids(a),
    "__call__": lambda a, b: SIMPLE(a, padding=b),
    "__call__ options": lambda a, b: SIMPLE(["1"], max_length=a, truncation=b),
    "encode": lambda a, b: SIMPLE.encode(a, return_tensors=b),
    "decode": lambda a, b: SIMPLE.decode(a, skip_special_tokens=b),
    "batch_decode": lambda a, b: SIMPLE.batch_decode(a),
    "pad": lambda a, b: SIMPLE.pad(a, padding=b),
    "Encoding.to": lambda a, b: SIMPLE(["1"], return_tensors="pt").to(a, non_blocking=b),
    "pad rows": lambda a, b: SIMPLE.pad([{"input_ids": a}, {"input_ids": b}]),
    "convert_ids_to_tokens": lambda a, b: SIMPLE.convert_ids_to_tokens(a),
    "convert_tokens_to_ids": lambda a, b: SIMPLE.convert_tokens_to_ids(a),
    "batch_encode": SIMPLE.batch_encode,
    "get_special_tokens_mask": lambda a, b: SIMPLE.get_special_tokens_mask(
        a, already_has_special_tokens=b
    ),
    "ByteTokenizer()": lambda a, b: BYTE(a),
    "SimpleTokenizer": lambda a, b: tokenizers.SimpleTokenizer(a, unk_fallback=b),
    "CharTokenizer": lambda a, b: tokenizers.CharTokenizer(a),
    "BPETokenizer.train": tokenizers.BPETokenizer.train,
    "BPETokenizer.from_merges": lambda a, b: tokenizers.BPETokenizer.from_merges(a),
    "load_tokenizer": lambda a, b: tokenizers.load_tokenizer(a),
    "mask_tokens": lambda a, b: noise.mask_tokens(a, b, mask_token_id=2, seed=0),
    "mask_tokens options": lambda a, b: noise.mask_tokens([[7, 8]], 0.5, mask_token_id=a, seed=b),
    "uniform_corrupt": lambda a, b: noise.uniform_corrupt(a, b, vocab_size=10, seed=0),
    "schedule(t)": lambda a, b: noise.LogLinearSchedule()(a),
    "LogLinearSchedule": lambda a, b: noise.LogLinearSchedule(eps=a, return_tensors=b),
    "LinearSchedule": lambda a, b: noise.LinearSchedule(sigma_min=a, sigma_max=b),
    "sample_t": lambda a, b: noise.LogLinearSchedule().sample_t(a, seed=b),
    "t_from_total_noise": lambda a, b: noise.LogLinearSchedule().t_from_total_noise(a),
    "DDPMSchedule": lambda a, b: ddpm.DDPMSchedule(a, beta_schedule=b),
    "add_noise": lambda a, b: ddpm.DDPMSchedule(10).add_noise(a, b, [1]),
    "add_noise timesteps": lambda a, b: ddpm.DDPMSchedule(10).add_noise(
        np.zeros((1, 2)), np.zeros((1, 2)), a
    ),
    "set_timesteps": lambda a, b: ddpm.DDPMSchedule(10).set_timesteps(a, spacing=b),
    "causal_lm_loss": loss.causal_lm_loss,
    "causal_lm_loss options": lambda a, b: loss.causal_lm_loss(
        LOGITS, LABELS, reduction=a, softcap=b
    ),
    "causal_lm_loss_and_grad": loss.causal_lm_loss_and_grad,
    "CausalLoss": lambda a, b: loss.CausalLoss()(a, b),
    "uniform": rng.uniform,
    "integers": lambda a, b: rng.integers(0, a, b, 0),
    "compare_tensors": assertions.compare_tensors,
    "assert_close": assertions.assert_close,
    "assert_finite": lambda a, b: assertions.assert_finite(a),
    # Options and secondary entry points.
    "fixture_tokenizer": lambda a, b: tokenizers.fixture_tokenizer(a),
    "make_fixture_tokenizer": lambda a, b: tokenizers.make_fixture_tokenizer(a),
    "make_fixture_tokenizer bpe": lambda a, b: tokenizers.make_fixture_tokenizer(
        "bpe", vocab_size=a
    ),
    "packed_example": packing.packed_example,
    "sample_document_lengths": lambda a, b: packing.sample_document_lengths(a, b, seed=0),
    "assert_valid_packing": packing.assert_valid_packing,
    "pack_sequences return_tensors": lambda a, b: packing.pack_sequences(
        [[1]], 4, return_tensors=a, strategy=b
    ),
    "check_packing options": lambda a, b: packing.check_packing(BATCH, capacity=a, labels=b),
    "check_packing cu_seqlens": lambda a, b: packing.check_packing(
        {**BATCH, "cu_seqlens": a, "max_seqlen": b}
    ),
    "check_packing starts": lambda a, b: packing.check_packing(
        {**BATCH, "document_starts": a, "seq_lengths": b}
    ),
    "check_packing mask": lambda a, b: packing.check_packing(
        {**BATCH, "attention_mask": a, "labels": b}
    ),
    "check_packing sources": lambda a, b: packing.check_packing(BATCH, a),
    "mask_tokens protect": lambda a, b: noise.mask_tokens(
        [[7, 8]], 0.5, mask_token_id=2, seed=0, protect=a
    ),
    "CosineSchedule": lambda a, b: noise.CosineSchedule(eps=a, return_tensors=b),
    "GeometricSchedule": lambda a, b: noise.GeometricSchedule(sigma_min=a, sigma_max=b),
    "noise_rate, loss_weight": lambda a, b: (
        noise.CosineSchedule().noise_rate(a),
        noise.CosineSchedule().loss_weight(b),
    ),
    "t_from_noise_rate": lambda a, b: noise.CosineSquaredSchedule().t_from_noise_rate(a),
    "sample_t options": lambda a, b: noise.LogLinearSchedule().sample_t(2, eps=a, antithetic=b),
    "sample_t dtype": lambda a, b: noise.LogLinearSchedule().sample_t(2, dtype=b),
    "causal_lm_loss ignore_index": lambda a, b: loss.causal_lm_loss(
        LOGITS, LABELS, ignore_index=a, label_smoothing=b
    ),
    "causal_lm_loss z_loss": lambda a, b: loss.causal_lm_loss(
        LOGITS, LABELS, z_loss_scale=a, num_items_in_batch=b
    ),
    "causal_lm_loss_and_grad options": lambda a, b: loss.causal_lm_loss_and_grad(
        LOGITS.copy(), LABELS, in_place=a, shift=b
    ),
    "CausalLoss()": lambda a, b: loss.CausalLoss(reduction=a, softcap=b),
    "ChunkedCausalLoss()": lambda a, b: loss.ChunkedCausalLoss(chunk_size=a),
    "CausalLoss HF convention": lambda a, b: loss.CausalLoss()(
        torch.zeros(1, 3, 4), torch.tensor([[1, 2, 3]]), vocab_size=a, shift_labels=b
    ),
    "uniform options": lambda a, b: rng.uniform(3, 0, stream=a, offset=b),
    "uniform dtype": lambda a, b: rng.uniform(3, 0, dtype=a),
    "integers bounds": lambda a, b: rng.integers(a, b, 3, 0),
    "assert_close options": lambda a, b: assertions.assert_close(1.0, 1.0, preset=a, rms_abs=b),
    "assert_close factor": lambda a, b: assertions.assert_close(
        1.0, 1.0, compare_factor=a, rms_eps=b
    ),
    "assert_gradients_flow": assertions.assert_gradients_flow,
    "assert_batch_independence": lambda a, b: assertions.assert_batch_independence(
        lambda x: x, a, index=b
    ),
    "assert_causal": lambda a, b: assertions.assert_causal(lambda x: x, a),
    "assert_can_overfit": lambda a, b: assertions.assert_can_overfit(
        MODEL, a, lambda m, x: torch.tensor(0.0, requires_grad=True), steps=2, lr=b
    ),
    "set_num_threads": lambda a, b: parallel.set_num_threads(a),
    "reseed": lambda a, b: seeding.reseed(a),
    "tokenizer options": lambda a, b: tokenizers.SimpleTokenizer(
        ["a"], padding_side=a, model_max_length=b
    ),
    "special_tokens": lambda a, b: tokenizers.SimpleTokenizer(["a"], special_tokens=a),
    "batch_decode options": lambda a, b: SIMPLE.batch_decode(
        [[7]], clean_up_tokenization_spaces=a, skip_special_tokens=b
    ),
    "__call__ pad_to_multiple_of": lambda a, b: SIMPLE(
        ["1"], padding=True, pad_to_multiple_of=a, return_tensors=b
    ),
    "__call__ flags": lambda a, b: SIMPLE(["1"], return_length=a, return_token_type_ids=b),
    "__call__ text_pair": lambda a, b: SIMPLE("1", a, b),
    "__call__ text_target": lambda a, b: SIMPLE(a, text_target=b),
    "__call__ pair truncation": lambda a, b: SIMPLE(["1 2"], ["3"], truncation=a, max_length=b),
    "get_special_tokens_mask pair": lambda a, b: SIMPLE.get_special_tokens_mask(a, b),
    "__call__ split words": lambda a, b: SIMPLE(a, b, is_split_into_words=True),
    "word_ids": lambda a, b: SIMPLE([["1"]], is_split_into_words=True).word_ids(a),
    "__call__ windows": lambda a, b: SIMPLE(
        ["1 2 3"], truncation=True, max_length=a, stride=b, return_overflowing_tokens=True
    ),
    "pad options": lambda a, b: SIMPLE.pad(
        [{"input_ids": [7]}], max_length=a, pad_to_multiple_of=b
    ),
    "pad tensors": lambda a, b: SIMPLE.pad(
        [{"input_ids": [7]}], return_tensors=a, return_attention_mask=b
    ),
    "pad other keys": lambda a, b: SIMPLE.pad(
        [{"input_ids": [7], "attention_mask": a, "labels": b}]
    ),
    "num_special_tokens_to_add": lambda a, b: SIMPLE.num_special_tokens_to_add(a),
    "convert_tokens_to_string": lambda a, b: SIMPLE.convert_tokens_to_string(a),
    "tokenize": lambda a, b: SIMPLE.tokenize(a),
    "encode_array": SIMPLE.encode_array,
    "encode options": lambda a, b: SIMPLE.encode("1", padding=a, max_length=b),
}


@pytest.fixture
def restore_global_state():
    """set_num_threads and reseed succeed on some of the pool's values."""
    threads, seed = parallel.num_threads(), seeding.current_seed()
    yield
    parallel.set_num_threads(threads)
    seeding.reseed(seed)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
@pytest.mark.usefixtures("restore_global_state")
def test_wrong_inputs_raise_ferrofix_errors(name: str) -> None:
    call = ENTRY_POINTS[name]
    leaks = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, b in itertools.product(POOL, repeat=2):
            try:
                call(a, b)
            except (FerrofixError, AssertionError):
                pass
            except Exception as error:  # what this test looks for
                leaks.setdefault(type(error).__name__, f"({a!r:.40}, {b!r:.40}): {error!s:.100}")
    assert not leaks, f"{name} leaked: {leaks}"
