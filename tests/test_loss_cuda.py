"""The CUDA loss kernels against the CPU path, the float64 reference and torch.

Every test here is marked ``gpu``: it skips cleanly without a CUDA device and fails under
``--ferrofix-require-gpu``. Inputs are built on the CPU (the same helpers as
test_loss.py) and copied, so both backends see identical values.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ferrofix import _cuda, loss
from ferrofix.errors import ConfigError, DtypeError

from tests.reference import cross_entropy as reference
from tests.test_loss import OPTION_CASES, REDUCTIONS, make_inputs

pytestmark = pytest.mark.gpu

GRID = [(2, 33, 1000), (3, 17, 5000), (2, 9, 10003), (1, 4, 151936)]
GRID_IDS = [f"V{v}" for _, _, v in GRID]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Relative gradient tolerance per dtype. Both backends round once to the dtype, but the
# kernels sum in another order and use the hardware exp2 (~2 ulp of float32), so float32
# gets 1e-5 and the 16-bit types two ulp (one rounding step either way).
GRAD_RTOL = {"float32": 1e-5, "bfloat16": 2.0**-6, "float16": 2.0**-9}


def on_gpu(logits: np.ndarray, labels: np.ndarray, dtype: str):
    x = torch.from_numpy(logits).to(DTYPES[dtype])
    return x, torch.from_numpy(labels), x.cuda(), torch.from_numpy(labels).cuda()


def as_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value, np.float64)


def assert_grad_close(got: torch.Tensor, want: torch.Tensor, dtype: str) -> None:
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    error = (got - want).abs()
    bound = GRAD_RTOL[dtype] * want.abs() + 1e-6
    assert bool((error <= bound).all()), f"max error {error.max():.3g}"


@pytest.mark.parametrize(("batch", "seq", "vocab"), GRID, ids=GRID_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_matches_the_cpu_path(batch, seq, vocab, reduction, dtype) -> None:
    logits, labels = make_inputs(batch, seq, vocab)
    x, y, x_gpu, y_gpu = on_gpu(logits, labels, dtype)
    want, want_grad = loss.causal_lm_loss_and_grad(x, y, reduction=reduction)
    got, grad = loss.causal_lm_loss_and_grad(x_gpu, y_gpu, reduction=reduction)
    assert grad.device.type == "cuda"
    assert grad.dtype == x.dtype
    assert grad.shape == x.shape
    scale = batch * seq if reduction == "sum" else 1
    np.testing.assert_allclose(as_numpy(got), as_numpy(want), rtol=2e-6, atol=2e-5 * scale)
    assert_grad_close(grad, want_grad, dtype)


@pytest.mark.parametrize("options", list(OPTION_CASES.values()), ids=list(OPTION_CASES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_options_match_the_float64_reference(options, reduction) -> None:
    if "num_items_in_batch" in options and reduction != "mean":
        pytest.skip("num_items_in_batch only applies to the mean")
    logits, labels = make_inputs(2, 19, 2053, seed=3)
    labels[labels == -100] = options.get("ignore_index", -100)
    want, want_grad, _ = reference.causal_lm_loss_and_grad(
        logits, labels, reduction=reduction, **options
    )
    x = torch.from_numpy(logits).cuda()
    y = torch.from_numpy(labels).cuda()
    got, grad = loss.causal_lm_loss_and_grad(x, y, reduction=reduction, **options)
    scale = 40 if reduction == "sum" else 1
    np.testing.assert_allclose(as_numpy(got), want, rtol=0, atol=2e-5 * scale)
    np.testing.assert_allclose(grad.cpu().numpy(), want_grad, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_autograd_matches_torch_cross_entropy(dtype) -> None:
    logits, labels = make_inputs(4, 64, 32000, seed=7)
    x = torch.from_numpy(logits).to(DTYPES[dtype]).cuda()
    y = torch.from_numpy(labels).cuda()
    ours = x.clone().requires_grad_()
    theirs = x.clone().requires_grad_()
    got = loss.causal_lm_loss(ours, y)
    want = F.cross_entropy(
        theirs[:, :-1].reshape(-1, 32000).float(), y[:, 1:].reshape(-1), ignore_index=-100
    )
    (2.0 * got).backward()
    (2.0 * want).backward()
    assert got.dtype == torch.float32
    # Both losses require grad: read them detached (torch warns on float() otherwise).
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    assert_grad_close(ours.grad, theirs.grad, dtype)


def test_vocabulary_split_path_matches_the_fused_kernel() -> None:
    logits, labels = make_inputs(3, 11, 70001, seed=9)
    x, y = torch.from_numpy(logits).cuda(), torch.from_numpy(labels).cuda()
    options = loss._Options(-100, "none", True, 1e-4, 20.0, 0.1, None)
    fused = _cuda.causal_lm_loss(x, y, options, with_grad=True, splits=1)
    for splits in (2, 5, 64):
        split = _cuda.causal_lm_loss(x, y, options, with_grad=True, splits=splits)
        torch.testing.assert_close(split[0], fused[0], rtol=2e-6, atol=2e-6)
        torch.testing.assert_close(split[1], fused[1], rtol=2e-6, atol=2e-6, equal_nan=True)
        torch.testing.assert_close(split[2], fused[2], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cluster", [1, 2, 4, 8])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_rows_on_chip_match_the_fused_kernel(cluster, dtype) -> None:
    if cluster > 1 and torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("clusters of blocks need sm_90")
    # An odd vocabulary: every row starts at another offset mod 16 bytes.
    logits, labels = make_inputs(3, 11, 10003, seed=9)
    x = torch.from_numpy(logits).to(DTYPES[dtype]).cuda()
    y = torch.from_numpy(labels).cuda()
    plain = loss._Options(-100, "mean", True, 0.0, None, 0.0, None)
    everything = loss._Options(-100, "none", True, 1e-4, 20.0, 0.1, None)
    for options in (plain, everything):
        fused = _cuda.causal_lm_loss(x, y, options, with_grad=True, cluster=0)
        onchip = _cuda.causal_lm_loss(x, y, options, with_grad=True, cluster=cluster)
        torch.testing.assert_close(onchip[0], fused[0], rtol=2e-6, atol=2e-6)
        torch.testing.assert_close(onchip[1], fused[1], rtol=2e-6, atol=2e-6, equal_nan=True)
        assert_grad_close(onchip[2], fused[2], dtype)
        buffer = x.clone()
        in_place = _cuda.causal_lm_loss(
            buffer, y, options, with_grad=True, in_place=True, cluster=cluster
        )
        assert in_place[2].data_ptr() == buffer.data_ptr()
        assert torch.equal(in_place[0], onchip[0])
        assert torch.equal(buffer, onchip[2])


def test_in_place_gradient_overwrites_the_logits() -> None:
    logits, labels = make_inputs(2, 17, 3001, seed=2)
    x, y = torch.from_numpy(logits).cuda(), torch.from_numpy(labels).cuda()
    want_loss, want_grad = loss.causal_lm_loss_and_grad(x.clone(), y)
    buffer = x.clone()
    got_loss, grad = loss.causal_lm_loss_and_grad(buffer, y, in_place=True)
    assert grad is buffer
    assert float(got_loss) == float(want_loss)
    assert torch.equal(buffer, want_grad)


def test_in_place_gradient_is_an_in_place_write_to_autograd() -> None:
    logits, labels = make_inputs(2, 5, 11)
    z = torch.from_numpy(logits).cuda().requires_grad_()
    saved = torch.tanh(z)
    loss.causal_lm_loss_and_grad(saved, torch.from_numpy(labels).cuda(), in_place=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.sum().backward()
    with pytest.raises(ConfigError, match="a leaf tensor that requires grad"):
        loss.causal_lm_loss_and_grad(z, torch.from_numpy(labels).cuda(), in_place=True)


def test_return_lse_is_differentiable_as_on_the_cpu() -> None:
    logits, labels = make_inputs(2, 5, 300)
    grads = []
    for device in ("cpu", "cuda"):
        x = torch.from_numpy(logits).to(device).requires_grad_()
        value, lse = loss.causal_lm_loss(x, torch.from_numpy(labels).to(device), return_lse=True)
        (value + 1e-2 * (torch.nan_to_num(lse) ** 2).sum()).backward()
        grads.append(x.grad.cpu())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-7)


def test_out_of_range_label_raises_and_leaves_the_logits_untouched() -> None:
    logits, labels = make_inputs(2, 5, 50)
    labels[1, 3] = 50
    x = torch.from_numpy(logits).cuda()
    before = x.clone()
    message = "labels: value 50 at position (1, 3) is outside [0, 50) and is not ignore_index"
    for labels_in in (torch.from_numpy(labels).cuda(), labels, torch.from_numpy(labels).int()):
        with pytest.raises(ConfigError, match=re.escape(message)):
            loss.causal_lm_loss_and_grad(x, labels_in, in_place=True)
        assert torch.equal(x, before)
    negative = labels.copy()
    negative[0, 0] = -5  # position 0 is never a target, but every label is checked
    with pytest.raises(ConfigError, match=r"value -5 at position \(0, 0\)"):
        loss.causal_lm_loss(x, torch.from_numpy(negative).cuda())


def test_every_label_ignored_gives_exactly_zero() -> None:
    x = torch.randn(2, 8, 100, device="cuda", requires_grad=True)
    y = torch.full((2, 8), -100, device="cuda")
    value = loss.causal_lm_loss(x, y)
    value.backward()
    assert float(value.detach()) == 0.0
    assert bool((x.grad == 0).all())


def test_runs_on_the_current_stream_and_is_deterministic() -> None:
    logits, labels = make_inputs(8, 128, 32000, seed=4)
    x = torch.from_numpy(logits).to(torch.bfloat16).cuda()
    y = torch.from_numpy(labels).cuda()
    first = loss.causal_lm_loss_and_grad(x, y)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        second = loss.causal_lm_loss_and_grad(x, y)
    torch.cuda.current_stream().wait_stream(side)
    assert float(first[0]) == float(second[0])
    assert torch.equal(first[1], second[1])


def test_masked_vocabulary_entries_get_zero_probability() -> None:
    logits, labels = make_inputs(2, 9, 300)
    logits[..., 200:] = -np.inf
    labels[labels >= 200] = 0
    x = torch.from_numpy(logits).cuda()
    got, grad = loss.causal_lm_loss_and_grad(x, torch.from_numpy(labels).cuda())
    want, want_grad = loss.causal_lm_loss_and_grad(logits, labels)
    assert np.isfinite(float(got))
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert bool((grad[..., 200:] == 0).all())
    np.testing.assert_allclose(grad.cpu().numpy(), want_grad, atol=1e-6)


def test_nan_logits_propagate_to_the_loss() -> None:
    logits, labels = make_inputs(1, 6, 40)
    labels[:] = 1
    logits[0, 2, 7] = np.nan
    x, y = torch.from_numpy(logits).cuda(), torch.from_numpy(labels).cuda()
    got = loss.causal_lm_loss(x, y, reduction="none")
    assert np.isnan(got[0, 2].item())
    assert np.isfinite(got[0, [0, 1, 3, 4]].cpu().numpy()).all()


def test_return_lse_and_loss_classes_accept_cuda_tensors() -> None:
    logits, labels = make_inputs(2, 7, 500)
    x, y = torch.from_numpy(logits).cuda(), torch.from_numpy(labels).cuda()
    value, lse = loss.causal_lm_loss(x, y, return_lse=True)
    _, want_lse = loss.causal_lm_loss(logits, labels, return_lse=True)
    np.testing.assert_allclose(lse.cpu().numpy(), want_lse, rtol=1e-6, equal_nan=True)
    assert float(loss.CausalLoss()(x, y)) == float(value)
    assert float(loss.ChunkedCausalLoss(chunk_size=8)(x, y)) == float(value)


def test_extra_device_memory_is_the_gradient_plus_o_rows() -> None:
    x = torch.randn(4096, 32000, device="cuda", dtype=torch.bfloat16)
    y = torch.randint(0, 32000, (4096,), device="cuda")
    loss.causal_lm_loss_and_grad(x, y, shift=False)  # compile and load outside the measure
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    _, grad = loss.causal_lm_loss_and_grad(x, y, shift=False)
    extra = torch.cuda.max_memory_allocated() - base - grad.numel() * grad.element_size()
    assert extra <= 64 * 4096 + 2**20  # a few float32 per row, and the allocator's rounding


def test_float64_and_wrong_label_dtypes_are_rejected() -> None:
    x = torch.zeros(2, 3, 5, device="cuda", dtype=torch.float64)
    y = torch.zeros(2, 3, dtype=torch.int64, device="cuda")
    with pytest.raises(DtypeError, match="causal_lm_loss on CUDA does not support dtype float64"):
        loss.causal_lm_loss(x, y)
    with pytest.raises(DtypeError, match="expected an integer tensor, got float32"):
        loss.causal_lm_loss(x.float(), y.float())
