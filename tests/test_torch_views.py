"""Tensors numpy cannot view as they are.

torch applies the negation of some views (``x.conj().imag``, ``torch._neg_view(x)``) and
the conjugation of complex tensors lazily: a bit on the tensor, over memory that still
holds the other sign. ``.numpy()`` refuses such tensors and raw pointers read the wrong
sign, so every entry point that reads tensor memory must resolve them first. Each call
below is made on a plain tensor and on a twin holding the same values behind the neg bit,
and must give identical results. Sparse and meta-device twins hold no memory numpy can
read, and float8 has no numpy dtype: those are ferrofix errors naming the argument.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ferrofix import assertions, ddpm, loss, noise, packing, tokenizers
from ferrofix.errors import ConfigError, DtypeError

from tests.test_loss import make_inputs


def negated_twin(tensor: torch.Tensor) -> torch.Tensor:
    """The same values as ``tensor``, with torch's neg bit set over negated memory."""
    twin = torch._neg_view(-tensor)
    assert twin.is_neg()
    return twin


def plain(value):
    """Results as plain comparable data (arrays, lists, numbers), recursively."""
    if isinstance(value, torch.Tensor):
        assert not value.is_neg()
        value = value.detach()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    if isinstance(value, dict) or hasattr(value, "keys"):
        return {key: plain(value[key]) for key in value}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, packing.Packing):
        return [value.bin_of_item, value.offset_in_bin, value.bin_offsets, value.items]
    if isinstance(value, packing.PackingReport):
        return [value.ok, value.num_violations]
    if isinstance(value, assertions.Comparison):
        return [value.rms, value.max_abs, value.max_index, value.non_finite]
    return value


def assert_identical(got, want) -> None:
    got, want = plain(got), plain(want)
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            assert_identical(got[key], want[key])
    elif isinstance(want, list):
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert_identical(a, b)
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        assert got.tobytes() == want.tobytes()
    else:
        assert got == want or (got != got and want != want)


torch.manual_seed(0)
LOGITS = torch.randn(2, 6, 11)
LABELS = torch.randint(0, 11, (2, 6))
TOKENIZER = tokenizers.SimpleTokenizer.for_numbers(50)
BATCH = packing.pack_sequences([[5, 6, 7], [8, 9]], 8, return_tensors="pt")
SCHEDULE = noise.CosineSchedule()
T = torch.rand(8, dtype=torch.float64)


def with_ids(ids: torch.Tensor) -> dict:
    return {**BATCH, "input_ids": ids}


# name -> (call, the tensor passed through the neg bit)
CALLS = {
    "causal_lm_loss logits": (lambda x: loss.causal_lm_loss(x, LABELS), LOGITS),
    "causal_lm_loss labels": (lambda y: loss.causal_lm_loss(LOGITS, y), LABELS),
    "causal_lm_loss bfloat16": (
        lambda x: loss.causal_lm_loss(x, LABELS),
        LOGITS.to(torch.bfloat16),
    ),
    "causal_lm_loss_and_grad": (lambda x: loss.causal_lm_loss_and_grad(x, LABELS), LOGITS),
    "causal_lm_loss lse": (lambda x: loss.causal_lm_loss(x, LABELS, return_lse=True), LOGITS),
    "CausalLoss": (lambda x: loss.CausalLoss(reduction="none")(x, LABELS), LOGITS),
    "compare_tensors": (lambda x: assertions.compare_tensors(x, LOGITS), LOGITS),
    "compare_tensors bfloat16": (
        lambda x: assertions.compare_tensors(x, LOGITS.to(torch.bfloat16)),
        LOGITS.to(torch.bfloat16),
    ),
    "compare_tensors integers": (lambda y: assertions.compare_tensors(y, LABELS), LABELS),
    "pack": (lambda n: packing.pack(n, 10), torch.tensor([3, 2, 3, 7])),
    "pack_sequences rows": (
        lambda s: packing.pack_sequences([s, torch.tensor([8, 9])], 8),
        torch.tensor([5, 6, 7]),
    ),
    "pack_sequences flat": (
        lambda s: packing.pack_sequences((s, torch.tensor([3, 2])), 8),
        torch.tensor([5, 6, 7, 8, 9]),
    ),
    "check_packing": (
        lambda ids: packing.check_packing(with_ids(ids), sequences=[[5, 6, 7], [8, 9]]),
        BATCH["input_ids"],
    ),
    "check_packing dense mask": (
        lambda mask: packing.check_packing({**BATCH, "attention_mask": mask}),
        packing.block_attention_mask(BATCH["document_ids"]).to(torch.int64),
    ),
    "block_attention_mask": (packing.block_attention_mask, BATCH["document_ids"]),
    "decode": (TOKENIZER.decode, torch.tensor([7, 8, 9])),
    "batch_decode": (TOKENIZER.batch_decode, torch.tensor([[7, 8], [9, 10]])),
    "pad": (
        lambda ids: TOKENIZER.pad([{"input_ids": ids}, {"input_ids": [7]}], return_tensors="np"),
        torch.tensor([7, 8, 9]),
    ),
    "schedule": (SCHEDULE, T),
    "schedule float32": (SCHEDULE, T.float()),
    "schedule bfloat16": (SCHEDULE, T.to(torch.bfloat16)),
    "mask_tokens ids": (
        lambda ids: noise.mask_tokens(ids, 0.5, mask_token_id=2, seed=1),
        torch.randint(7, 50, (2, 16)),
    ),
    "mask_tokens probabilities": (
        lambda p: noise.mask_tokens(torch.full((2, 16), 9), p, mask_token_id=2, seed=1),
        torch.tensor([0.3, 0.7]),
    ),
    "mask_tokens protect": (
        lambda ids: noise.mask_tokens([[7, 8, 9]], 0.9, mask_token_id=2, seed=1, protect=ids),
        torch.tensor([7, 9]),
    ),
    "add_noise timesteps": (
        lambda steps: ddpm.DDPMSchedule(10).add_noise(np.ones((2, 3)), np.zeros((2, 3)), steps),
        torch.tensor([1, 7]),
    ),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_a_pending_negation_reads_as_the_values_it_stands_for(name: str) -> None:
    call, value = CALLS[name]
    assert_identical(call(negated_twin(value)), call(value))


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("kind", ["sparse", "meta"])
def test_tensors_without_readable_memory_are_refused_by_name(name: str, kind: str) -> None:
    call, value = CALLS[name]
    twin = value.to_sparse() if kind == "sparse" else value.to("meta")
    expected = "expected a dense \\(strided\\) tensor" if kind == "sparse" else "meta"
    with pytest.raises((DtypeError, ConfigError), match=expected):
        call(twin)


def test_float8_is_compared_exactly_and_refused_as_ids() -> None:
    for dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        values = LOGITS.to(dtype)
        widened = values.float()
        assert assertions.compare_tensors(values, widened).max_abs == 0.0
        assert assertions.compare_tensors(values, LOGITS).max_abs > 0.0
        assertions.assert_close(values, widened)
        with pytest.raises(DtypeError, match="lengths: numpy has no float8"):
            packing.pack(torch.tensor([3.0, 2.0]).to(dtype), 10)
        with pytest.raises(DtypeError, match="causal_lm_loss does not support dtype float8"):
            loss.causal_lm_loss_and_grad(values, LABELS)
    with pytest.raises(DtypeError, match="token_ids: numpy has no bfloat16"):
        TOKENIZER.decode(torch.tensor([7.0], dtype=torch.bfloat16))


def test_assertions_see_the_values_not_the_memory() -> None:
    twin = negated_twin(LOGITS)
    assert assertions.compare_tensors(twin, LOGITS).max_abs == 0.0
    assertions.assert_close(twin, LOGITS)
    assertions.assert_deterministic(lambda: twin)  # the same bits on every call
    with pytest.raises(AssertionError):
        assertions.assert_close(twin, -LOGITS)


def test_conjugated_complex_values_are_resolved() -> None:
    z = torch.complex(LOGITS, LOGITS.flip(-1))
    assertions.assert_finite(z.conj())
    with pytest.raises(AssertionError, match="non-finite values"):
        assertions.assert_finite(torch.complex(LOGITS, LOGITS.log()).conj())
    # Its imaginary part is the classic way a real tensor gets the neg bit.
    imag = z.conj().imag
    assert imag.is_neg()
    assert_identical(
        loss.causal_lm_loss(imag, LABELS), loss.causal_lm_loss(-LOGITS.flip(-1), LABELS)
    )


def test_gradients_through_autograd_match_torch() -> None:
    logits, labels = (torch.from_numpy(a) for a in make_inputs(2, 7, 13))
    source = torch.complex(torch.zeros_like(logits), -logits).requires_grad_()
    twin = source.conj().imag  # equals logits, neg bit set, differentiable to `source`
    assert twin.is_neg()
    loss.causal_lm_loss(twin, labels).backward()
    ours = source.grad.clone()
    source.grad = None
    flat_labels = labels[:, 1:].reshape(-1)
    F.cross_entropy(twin[:, :-1].reshape(-1, 13), flat_labels).backward()
    torch.testing.assert_close(ours, source.grad, atol=1e-7, rtol=1e-5)


def test_an_in_place_gradient_refuses_negated_memory() -> None:
    twin = negated_twin(LOGITS.clone())
    with pytest.raises(ConfigError, match="resolve_neg"):
        loss.causal_lm_loss_and_grad(twin, LABELS, in_place=True)
    resolved = twin.resolve_neg()
    got, grad = loss.causal_lm_loss_and_grad(resolved, LABELS, in_place=True)
    assert grad is resolved
    want, want_grad = loss.causal_lm_loss_and_grad(LOGITS, LABELS)
    assert got == want
    assert torch.equal(grad, want_grad)


@pytest.mark.gpu
def test_cuda_kernels_read_the_values_not_the_memory() -> None:
    logits, labels = LOGITS.cuda(), LABELS.cuda()
    want, want_grad = loss.causal_lm_loss_and_grad(logits, labels)
    got, grad = loss.causal_lm_loss_and_grad(negated_twin(logits), negated_twin(labels))
    assert torch.equal(got, want)
    assert torch.equal(grad, want_grad)
    with pytest.raises(ConfigError, match="resolve_neg"):
        loss.causal_lm_loss_and_grad(negated_twin(logits.clone()), labels, in_place=True)
