"""ferrofix.loss against the float64 reference and torch, plus properties and bad inputs."""

from __future__ import annotations

import math

import ferrofix
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ferrofix import loss
from ferrofix.errors import ConfigError, DtypeError, ShapeError
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import cross_entropy as reference

REDUCTIONS = ["mean", "sum", "none"]


def make_inputs(batch: int, seq: int, vocab: int, seed: int = 0, scale: float = 3.0):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((batch, seq, vocab)) * scale).astype(np.float32)
    labels = rng.integers(0, vocab, (batch, seq))
    labels.reshape(-1)[::4] = -100  # every 4th label ignored
    return logits, labels


def assert_loss_close(got, want, atol: float) -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=atol)


# --- parity with the float64 reference -------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "seq", "vocab", "loss_atol"),
    [(2, 33, 1000, 5e-6), (3, 17, 5000, 5e-6), (2, 9, 10003, 5e-6), (1, 4, 151936, 5e-5)],
    ids=["V1000", "V5000", "V10003", "V151936"],
)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float32_matches_reference(batch, seq, vocab, loss_atol, reduction) -> None:
    logits, labels = make_inputs(batch, seq, vocab)
    want, want_grad, _ = reference.causal_lm_loss_and_grad(logits, labels, reduction=reduction)
    got, grad = loss.causal_lm_loss_and_grad(logits, labels, reduction=reduction)
    rows = batch * (seq - 1)
    assert_loss_close(got, want, loss_atol * (rows if reduction == "sum" else 1))
    assert grad.dtype == np.float32
    assert grad.shape == logits.shape
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=1e-5)
    assert loss.causal_lm_loss(logits, labels, reduction=reduction) == pytest.approx(got)


# Output rounding of the 16-bit gradient: half an ulp relative, plus the subnormal step.
HALF_DTYPES = {
    "float16": (torch.float16, 2.0**-11, 6e-8),
    "bfloat16": (torch.bfloat16, 2.0**-8, 1e-30),
}


@pytest.mark.parametrize("dtype", list(HALF_DTYPES))
@pytest.mark.parametrize("vocab", [1000, 10003])
def test_half_precision_logits_match_reference_on_their_own_values(dtype, vocab) -> None:
    torch_dtype, rel, abs_ = HALF_DTYPES[dtype]
    logits, labels = make_inputs(2, 21, vocab)
    rounded = torch.from_numpy(logits).to(torch_dtype)
    want, want_grad, _ = reference.causal_lm_loss_and_grad(rounded.double().numpy(), labels)
    got, grad = loss.causal_lm_loss_and_grad(rounded, torch.from_numpy(labels))
    assert grad.dtype == torch_dtype
    assert abs(got - want) < 5e-6
    want_grad = torch.from_numpy(want_grad)
    error = (grad.double() - want_grad).abs()
    assert bool((error <= 1.01 * rel * want_grad.abs() + abs_ + 1e-9).all()), error.max()


def test_float64_logits_are_computed_in_float64() -> None:
    logits, labels = make_inputs(2, 7, 301)
    wide = logits.astype(np.float64) * 1.000001
    want, want_grad, _ = reference.causal_lm_loss_and_grad(wide, labels)
    got, grad = loss.causal_lm_loss_and_grad(wide, labels)
    assert grad.dtype == np.float64
    assert got == pytest.approx(want, abs=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=1e-14)


OPTION_CASES = {
    "z_loss": {"z_loss_scale": 1e-3},
    "softcap": {"softcap": 5.0},
    "smoothing": {"label_smoothing": 0.1},
    "num_items": {"num_items_in_batch": 50},
    "unshifted": {"shift": False},
    "ignore_0": {"ignore_index": 0},
    "everything": {"z_loss_scale": 1e-4, "softcap": 30.0, "label_smoothing": 0.2},
}


@pytest.mark.parametrize("options", list(OPTION_CASES.values()), ids=list(OPTION_CASES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_options_match_reference(options, reduction) -> None:
    if "num_items_in_batch" in options and reduction != "mean":
        pytest.skip("num_items_in_batch only applies to the mean")
    logits, labels = make_inputs(2, 19, 2053, seed=3)
    labels[labels == -100] = options.get("ignore_index", -100)
    want, want_grad, _ = reference.causal_lm_loss_and_grad(
        logits, labels, reduction=reduction, **options
    )
    got, grad = loss.causal_lm_loss_and_grad(logits, labels, reduction=reduction, **options)
    assert_loss_close(got, want, 5e-6 * (40 if reduction == "sum" else 1))
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=1e-5)


def test_label_smoothing_and_reductions_agree_with_torch() -> None:
    logits, labels = make_inputs(2, 13, 997, seed=5)
    x = torch.from_numpy(logits)[:, :-1].reshape(-1, 997).double()
    y = torch.from_numpy(labels)[:, 1:].reshape(-1)
    for reduction in REDUCTIONS:
        want = F.cross_entropy(x, y, label_smoothing=0.15, reduction=reduction)
        got = loss.causal_lm_loss(logits, labels, label_smoothing=0.15, reduction=reduction)
        np.testing.assert_allclose(np.ravel(got), want.numpy().ravel(), rtol=0, atol=5e-6)


def test_return_lse_is_logsumexp_of_scored_rows_and_nan_elsewhere() -> None:
    logits, labels = make_inputs(2, 6, 50)
    _, lse = loss.causal_lm_loss(logits, labels, return_lse=True)
    assert lse.shape == labels.shape
    assert lse.dtype == np.float32
    want = torch.logsumexp(torch.from_numpy(logits).double(), dim=-1).numpy()
    scored = np.zeros(labels.shape, bool)
    scored[:, :-1] = labels[:, 1:] != -100
    np.testing.assert_allclose(lse[scored], want[scored], rtol=1e-6)
    assert np.isnan(lse[~scored]).all()


@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("loss_used", [True, False])
def test_return_lse_is_differentiable(softcap, loss_used) -> None:
    """A term built on the returned lse (a hand-written z-loss) gets its gradient, as it
    would from torch.logsumexp; rows with no lse (NaN) get none. Before, lse was detached
    and such a term silently contributed nothing."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 9, dtype=torch.float64, generator=generator)
    labels = torch.tensor([[1, 2, -100, 4, 3], [6, 0, 3, 5, 8]])
    ours = logits.clone().requires_grad_()
    value, lse = loss.causal_lm_loss(ours, labels, return_lse=True, softcap=softcap)
    assert lse.requires_grad
    z_loss = 1e-2 * (torch.nan_to_num(lse) ** 2).sum()
    (value + z_loss if loss_used else z_loss).backward()

    theirs = logits.clone().requires_grad_()
    capped = theirs if softcap is None else softcap * torch.tanh(theirs / softcap)
    scored = torch.zeros(2, 5, dtype=torch.bool)
    scored[:, :-1] = labels[:, 1:] != -100
    want_lse = torch.where(scored, torch.logsumexp(capped, dim=-1), 0.0)
    want_loss = F.cross_entropy(capped[:, :-1].reshape(-1, 9), labels[:, 1:].reshape(-1))
    want_z = 1e-2 * (want_lse**2).sum()
    (want_loss + want_z if loss_used else want_z).backward()
    # lse itself is float32, so the z-loss's upstream gradient carries its rounding.
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-6, atol=1e-8)


def test_backward_through_the_lse_keeps_no_tensor_alive() -> None:
    """Once the step's tensors are dropped, nothing of them survives: a training loop that
    backpropagates through the lse must not accumulate logits, lse or gradients."""
    import gc
    import weakref

    logits = torch.randn(3, 4, 16, dtype=torch.float64).requires_grad_()
    labels = torch.randint(0, 16, (3, 4))
    value, lse = loss.causal_lm_loss(logits, labels, return_lse=True)
    (value + 1e-2 * (torch.nan_to_num(lse) ** 2).sum()).backward()
    watched = [weakref.ref(t) for t in (logits, lse, logits.grad)]
    del logits, labels, value, lse
    gc.collect()
    assert [ref() is None for ref in watched] == [True, True, True]


def test_the_autograd_function_is_built_once() -> None:
    """Building it is ~40 us of class creation per call, more than a small loss costs."""
    logits = torch.randn(2, 3, 8).requires_grad_()
    labels = torch.randint(0, 8, (2, 3))
    first = loss.causal_lm_loss(logits, labels).grad_fn
    second = loss.causal_lm_loss(logits, labels).grad_fn
    assert type(first) is type(second)


def test_all_ignored_mean_is_exactly_zero_with_zero_gradient() -> None:
    logits, _ = make_inputs(2, 5, 64)
    labels = np.full((2, 5), -100)
    value, grad = loss.causal_lm_loss_and_grad(logits, labels)
    assert value == 0.0
    assert not grad.any()
    tensor = torch.from_numpy(logits).requires_grad_()
    out = loss.causal_lm_loss(tensor, torch.from_numpy(labels))
    out.backward()
    assert out.item() == 0.0
    assert not tensor.grad.any()


def test_single_sequence_2d_logits_shift_like_a_batch_of_one() -> None:
    logits, labels = make_inputs(1, 12, 31)
    flat = loss.causal_lm_loss(logits[0], labels[0], reduction="none")
    batched = loss.causal_lm_loss(logits, labels, reduction="none")
    assert flat.shape == (11,)
    np.testing.assert_array_equal(flat, batched[0])


def test_big_endian_inputs_give_the_same_loss_and_gradient() -> None:
    logits, labels = make_inputs(2, 6, 31)
    swapped = (logits.astype(logits.dtype.newbyteorder(">")), labels.astype(">i8"))
    expected = loss.causal_lm_loss_and_grad(logits, labels)
    got = loss.causal_lm_loss_and_grad(*swapped)
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])


def test_nan_logits_propagate_and_negative_infinity_is_masked() -> None:
    logits, labels = make_inputs(1, 4, 10)
    labels[:] = 3
    masked = logits.copy()
    masked[..., 7:] = -np.inf
    value, grad = loss.causal_lm_loss_and_grad(masked, labels)
    want, want_grad, _ = reference.causal_lm_loss_and_grad(masked[..., :7], labels)
    assert value == pytest.approx(want, abs=1e-6)
    assert (grad[..., 7:] == 0).all()
    np.testing.assert_allclose(grad[..., :7], want_grad, atol=1e-6)
    poisoned = logits.copy()
    poisoned[0, 1, 5] = np.nan
    per_token = loss.causal_lm_loss(poisoned, labels, reduction="none")
    assert np.isnan(per_token[0, 1])
    assert np.isfinite(per_token[0, [0, 2]]).all()


MASKED_BLOCKS = {"leading": (0, 4100), "middle": (2048, 6144), "all_but_last": (0, 10002)}


@pytest.mark.parametrize("dtype", ["float32", "float64", *HALF_DTYPES])
@pytest.mark.parametrize("block", list(MASKED_BLOCKS.values()), ids=list(MASKED_BLOCKS))
def test_masked_blocks_longer_than_a_chunk_are_dropped_not_nan(dtype, block) -> None:
    # The core streams rows in 2048-entry chunks; a chunk that is all -inf must add nothing
    # (it once made the whole row NaN when it came first).
    start, stop = block
    logits, labels = make_inputs(2, 5, 10003, seed=3)
    labels[..., 0::2] = 10002
    labels[..., 1::2] = 7000 if stop <= 7000 else 10002
    labels[..., 3] = -100
    logits[..., start:stop] = -np.inf
    kept = np.delete(logits, np.s_[start:stop], axis=-1)
    shifted_labels = np.where(labels >= stop, labels - (stop - start), labels)
    rel, abs_ = 0.0, 1e-5
    if dtype in HALF_DTYPES:
        torch_dtype, rel, abs_ = HALF_DTYPES[dtype]
        given = torch.from_numpy(logits).to(torch_dtype)
        kept = torch.from_numpy(kept).to(torch_dtype).double().numpy()
        got, grad = loss.causal_lm_loss_and_grad(given, torch.from_numpy(labels))
        grad = grad.double().numpy()
    else:
        got, grad = loss.causal_lm_loss_and_grad(logits.astype(dtype), labels)
    want, want_grad, _ = reference.causal_lm_loss_and_grad(kept, shifted_labels)
    assert math.isfinite(got)
    assert abs(got - want) < 5e-6
    assert (grad[..., start:stop] == 0).all()
    error = np.abs(np.delete(grad, np.s_[start:stop], axis=-1) - want_grad)
    assert (error <= 1.01 * rel * np.abs(want_grad) + abs_ + 1e-9).all(), error.max()


# --- gradient paths ----------------------------------------------------------------------


def test_in_place_gradient_equals_out_of_place() -> None:
    logits, labels = make_inputs(2, 9, 4099)
    value, grad = loss.causal_lm_loss_and_grad(logits, labels, label_smoothing=0.1)
    buffer = logits.copy()
    value_in_place, returned = loss.causal_lm_loss_and_grad(
        buffer, labels, label_smoothing=0.1, in_place=True
    )
    assert returned is buffer
    assert value_in_place == value
    np.testing.assert_array_equal(buffer, grad)
    tensor = torch.from_numpy(logits.copy()).bfloat16()
    _, torch_grad = loss.causal_lm_loss_and_grad(tensor, torch.from_numpy(labels))
    _, same = loss.causal_lm_loss_and_grad(tensor, torch.from_numpy(labels), in_place=True)
    assert same is tensor
    assert torch.equal(tensor, torch_grad)


def test_in_place_gradient_is_an_in_place_write_to_autograd() -> None:
    """Overwriting logits that an operation saved for backward (tanh saves its output)
    must make that backward raise, as torch's own in-place operations do, not feed it the
    gradient as if it were the saved values."""
    logits, labels = (torch.from_numpy(a) for a in make_inputs(2, 5, 11))
    z = logits.clone().requires_grad_()
    saved = torch.tanh(z)
    before = saved._version
    loss.causal_lm_loss_and_grad(saved, labels, in_place=True)
    assert saved._version > before
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.sum().backward()
    # A matmul saves its inputs, not its output: the intended use, overwriting the logits
    # and backpropagating the gradient into the weights, still works.
    hidden, weight = torch.randn(2, 5, 3), torch.randn(3, 11, requires_grad=True)
    out = hidden @ weight
    reference_weight = weight.detach().clone().requires_grad_()
    want = loss.causal_lm_loss(hidden @ reference_weight, labels)
    want.backward()
    value, grad = loss.causal_lm_loss_and_grad(out, labels, in_place=True)
    assert grad is out
    assert value == pytest.approx(want.item(), rel=1e-6)  # the tensor is float32
    out.backward(grad)
    torch.testing.assert_close(weight.grad, reference_weight.grad)
    leaf = logits.clone().requires_grad_()
    with pytest.raises(ConfigError, match="a leaf tensor that requires grad"):
        loss.causal_lm_loss_and_grad(leaf, labels, in_place=True)
    assert torch.equal(leaf.detach(), logits)


def pooled_inputs(seed: int = 0):
    """Inputs whose gradient (2.1 MB in float32) is large enough to come from the pool."""
    return make_inputs(2, 64, 4099, seed)


def address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def test_pooled_gradients_are_never_handed_out_while_viewed() -> None:
    loss.release_gradient_buffers()
    logits, labels = pooled_inputs()
    _, first = loss.causal_lm_loss_and_grad(logits, labels)
    want = reference.causal_lm_loss_and_grad(logits, labels)[1]
    view = first[1]  # keeps the memory alive after `first` itself is gone
    leaf = torch.from_numpy(logits.copy()).requires_grad_()
    loss.causal_lm_loss(leaf, torch.from_numpy(labels)).backward()
    del first
    for seed in (1, 2, 3):  # more calls than the pool holds buffers
        other_logits, other_labels = pooled_inputs(seed)
        _, other = loss.causal_lm_loss_and_grad(other_logits, other_labels)
        assert not np.shares_memory(other, view)
        assert not np.shares_memory(other, leaf.grad.numpy())
    np.testing.assert_allclose(view, want[1], atol=1e-6)
    np.testing.assert_allclose(leaf.grad.numpy(), want, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_released_gradients_are_reused_with_fresh_values(dtype) -> None:
    loss.release_gradient_buffers()
    logits, labels = pooled_inputs()
    tensor = torch.from_numpy(logits).to(dtype)
    leaf = tensor.clone().requires_grad_()
    loss.causal_lm_loss(leaf, torch.from_numpy(labels)).backward()
    first_address = leaf.grad.data_ptr()
    leaf.grad = None  # the last view of the gradient: its memory returns to the pool
    assert ferrofix._native.core().idle_gradient_bytes() >= tensor.nbytes
    loss.causal_lm_loss(leaf, torch.from_numpy(labels)).backward()
    assert leaf.grad.data_ptr() == first_address
    _, in_place = loss.causal_lm_loss_and_grad(tensor.clone(), labels, in_place=True)
    assert torch.equal(leaf.grad, in_place)
    leaf.grad = None
    assert loss.release_gradient_buffers() >= tensor.nbytes
    assert loss.release_gradient_buffers() == 0


def test_numpy_gradients_reuse_the_pool_too() -> None:
    loss.release_gradient_buffers()
    logits, labels = pooled_inputs()
    _, grad = loss.causal_lm_loss_and_grad(logits, labels)
    first_address = address(grad)
    del grad
    _, grad = loss.causal_lm_loss_and_grad(logits * 2, labels)
    assert address(grad) == first_address
    want = reference.causal_lm_loss_and_grad(logits * 2, labels)[1]
    np.testing.assert_allclose(grad, want, atol=1e-6)


@pytest.mark.parametrize("return_lse", [False, True], ids=["loss", "loss_with_lse_returned"])
@pytest.mark.parametrize("options", list(OPTION_CASES.values())[:4], ids=list(OPTION_CASES)[:4])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_autograd_gradcheck_in_float64(options, reduction, return_lse) -> None:
    """gradcheck backpropagates through one graph many times (a re-entrant backward
    recomputes the gradient from what forward saved, the lse too when it is returned)."""
    if "num_items_in_batch" in options and reduction != "mean":
        pytest.skip("num_items_in_batch only applies to the mean")
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 7, dtype=torch.float64, generator=generator, requires_grad=True)
    labels = torch.tensor([[1, 2, -100, 4], [6, 0, 3, 5]])

    def fn(x):
        if return_lse:
            return loss.causal_lm_loss(x, labels, reduction=reduction, return_lse=True, **options)[
                0
            ]
        return loss.causal_lm_loss(x, labels, reduction=reduction, **options)

    assert torch.autograd.gradcheck(fn, (logits,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_a_second_derivative_raises_instead_of_vanishing(reduction) -> None:
    """A gradient penalty differentiates the loss's gradient again. The second derivative
    is not computed, so that must raise: a gradient without a graph would make the
    penalty a constant and its term would silently drop out of the total."""
    logits = torch.randn(2, 4, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[1, 2, -100, 4], [6, 0, 3, 5]])
    value = loss.causal_lm_loss(logits, labels, reduction=reduction).sum()
    (grad,) = torch.autograd.grad(value, logits, create_graph=True)
    shifted = F.cross_entropy(
        logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1), reduction=reduction
    ).sum()
    (want,) = torch.autograd.grad(shifted, logits)
    torch.testing.assert_close(grad.detach(), want)
    penalty = value + (grad**2).sum()
    with pytest.raises(ConfigError, match=r"second derivatives .* are not supported"):
        penalty.backward()
    with pytest.raises(ConfigError, match="second derivatives"):
        torch.autograd.gradgradcheck(lambda x: loss.causal_lm_loss(x, labels), (logits,))


def test_none_reduction_backward_weights_each_token() -> None:
    logits, labels = make_inputs(2, 6, 40)
    ours = torch.from_numpy(logits).double().requires_grad_()
    theirs = ours.detach().clone().requires_grad_()
    weights = torch.rand(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    per_token = loss.causal_lm_loss(ours, torch.from_numpy(labels), reduction="none")
    assert per_token.shape == (2, 5)
    (per_token * weights).sum().backward()
    want = F.cross_entropy(
        theirs[:, :-1].reshape(-1, 40),
        torch.from_numpy(labels)[:, 1:].reshape(-1),
        reduction="none",
    ).reshape(2, 5)
    (want * weights).sum().backward()
    torch.testing.assert_close(per_token, want)
    torch.testing.assert_close(ours.grad, theirs.grad)


def test_no_grad_and_non_leaf_paths() -> None:
    logits, labels = make_inputs(1, 5, 30)
    tensor = torch.from_numpy(logits).requires_grad_()
    with torch.no_grad():
        out = loss.causal_lm_loss(tensor, torch.from_numpy(labels))
    assert out.grad_fn is None
    assert out.dtype == torch.float32
    assert loss.causal_lm_loss(tensor.detach(), torch.from_numpy(labels)).grad_fn is None
    scaled = tensor * 2.0  # non-leaf: the gradient flows back through the multiply
    loss.causal_lm_loss(scaled, torch.from_numpy(labels)).backward()
    want = reference.causal_lm_loss_and_grad(logits * 2.0, labels)[1] * 2.0
    np.testing.assert_allclose(tensor.grad.numpy(), want, atol=1e-5)


@pytest.mark.parametrize("return_lse", [False, True], ids=["loss", "loss_with_lse_returned"])
def test_repeated_backward_through_the_same_graph_rescales_correctly(return_lse) -> None:
    logits, labels = make_inputs(1, 5, 30)
    tensor = torch.from_numpy(logits).requires_grad_()
    out = loss.causal_lm_loss(tensor, torch.from_numpy(labels), return_lse=return_lse)
    out = out[0] if return_lse else out
    want = reference.causal_lm_loss_and_grad(logits, labels)[1]
    for scale in (0.5, 0.5, 3.0, 1.0):
        tensor.grad = None
        (out * scale).backward(retain_graph=True)
        np.testing.assert_allclose(tensor.grad.numpy(), want * scale, atol=1e-6)
    tensor.grad = None
    (out * 0.0).backward(retain_graph=True)
    assert not tensor.grad.any()
    tensor.grad = None
    out.backward()
    np.testing.assert_allclose(tensor.grad.numpy(), want, atol=1e-6)


def test_training_step_matches_torch_cross_entropy() -> None:
    def step(use_ferrofix: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(50, 16), torch.nn.Linear(16, 50))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        ids = torch.randint(0, 50, (4, 12), generator=torch.Generator().manual_seed(2))
        labels = ids.clone()
        labels[:, :3] = -100
        for _ in range(3):
            optimizer.zero_grad()
            logits = model(ids)
            if use_ferrofix:
                value = loss.CausalLoss()(logits, labels)
            else:
                value = F.cross_entropy(logits[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1))
            value.backward()
            optimizer.step()
        return [p.detach().clone() for p in model.parameters()]

    for ours, theirs in zip(step(True), step(False), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_results_are_identical_for_one_and_two_threads() -> None:
    logits, labels = make_inputs(4, 64, 3001)
    results = []
    try:
        for threads in (1, 2):
            ferrofix.set_num_threads(threads)
            results.append(loss.causal_lm_loss_and_grad(logits, labels, z_loss_scale=1e-4))
    finally:
        ferrofix.set_num_threads(None)
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    seq=st.integers(1, 6),
    vocab=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    reduction=st.sampled_from(REDUCTIONS),
    shift=st.booleans(),
    smoothing=st.sampled_from([0.0, 0.3]),
    softcap=st.sampled_from([None, 2.0]),
)
def test_property_matches_reference_in_float64(
    batch, seq, vocab, seed, reduction, shift, smoothing, softcap
) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((batch, seq, vocab)) * 4
    labels = rng.integers(-1, vocab, (batch, seq))
    options = {
        "reduction": reduction,
        "shift": shift,
        "label_smoothing": smoothing,
        "softcap": softcap,
        "ignore_index": -1,
    }
    want, want_grad, _ = reference.causal_lm_loss_and_grad(logits, labels, **options)
    got, grad = loss.causal_lm_loss_and_grad(logits, labels, **options)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-12)


# --- classes and fixture ---------------------------------------------------------------


def test_loss_classes_shift_ignore_and_read_well() -> None:
    logits, labels = make_inputs(2, 8, 64)
    want = reference.causal_lm_loss_and_grad(logits, labels)[0]
    assert loss.CausalLoss()(logits, labels) == pytest.approx(want, abs=5e-6)
    chunked = loss.ChunkedCausalLoss(chunk_size=128, label_smoothing=0.1)
    smoothed = reference.causal_lm_loss_and_grad(logits, labels, label_smoothing=0.1)[0]
    assert chunked(logits, labels) == pytest.approx(smoothed, abs=5e-6)
    assert loss.CausalLoss()(logits, np.full_like(labels, -100)) == 0.0
    assert repr(loss.CausalLoss()) == "CausalLoss()"
    assert repr(loss.CausalLoss(z_loss_scale=1e-4)) == "CausalLoss(z_loss_scale=0.0001)"
    assert repr(chunked) == "ChunkedCausalLoss(chunk_size=128, label_smoothing=0.1)"
    assert ferrofix.CausalLoss is loss.CausalLoss


def _tiny_llama():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=61,  # prime, as the parity grids use odd sizes
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return transformers.LlamaForCausalLM(config)


@pytest.mark.parametrize("num_items_in_batch", [None, 11])
def test_causal_loss_swaps_into_a_transformers_model(num_items_in_batch) -> None:
    model = _tiny_llama()
    ids = torch.randint(0, 61, (2, 9), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[0, :3] = -100
    kwargs = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}

    def loss_and_grads():
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, attention_mask=torch.ones_like(ids), **kwargs)
        out.loss.backward()
        return out.loss.detach(), [p.grad.clone() for p in model.parameters()]

    want, want_grads = loss_and_grads()  # HF's own ForCausalLMLoss
    model.loss_function = loss.CausalLoss()
    got, got_grads = loss_and_grads()
    assert float(got) == pytest.approx(float(want), abs=5e-6)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_causal_loss_takes_hf_shift_labels_and_checks_vocab_size() -> None:
    logits, labels = make_inputs(2, 8, 64)
    t_logits, t_labels = torch.from_numpy(logits), torch.from_numpy(labels)
    shifted = torch.cat([t_labels[:, 1:], torch.full((2, 1), -100)], dim=1)
    causal = loss.CausalLoss()
    want = causal(t_logits, t_labels)
    assert float(causal(t_logits, None, vocab_size=64, shift_labels=shifted)) == pytest.approx(
        float(want), abs=1e-6
    )
    # Keywords HF models pass through are ignored in HF's convention (vocab_size given) only.
    assert float(causal(t_logits, t_labels, vocab_size=64, position_ids=None)) == float(want)
    with pytest.raises(
        ShapeError, match=r"^logits: expected shape \(\.\.\., 65\) for vocab_size=65"
    ):
        causal(t_logits, t_labels, vocab_size=65)
    with pytest.raises(ConfigError, match=r"^reducton: not an argument of CausalLoss"):
        causal(t_logits, t_labels, reducton="sum")
    with pytest.raises(ConfigError, match=r"^labels: give labels"):
        causal(t_logits)
    ignored = torch.full_like(t_labels, 7)
    assert float(causal(t_logits, ignored, vocab_size=64, ignore_index=7)) == 0.0
    assert float(causal(t_logits, ignored, ignore_index=7)) == 0.0  # a direct call's override
    assert float(causal(t_logits, ignored)) > 0.0  # and only for that call


def test_fixture_is_the_function(causal_lm_loss) -> None:
    assert causal_lm_loss is loss.causal_lm_loss


# --- bad inputs --------------------------------------------------------------------------

LOGITS = np.zeros((2, 3, 5), np.float32)
LABELS = np.zeros((2, 3), np.int64)

BAD_CALLS = [
    # numpy reads [1, True] as [1, 1]: a bool among labels is refused by position.
    (
        lambda: loss.causal_lm_loss(LOGITS, [[1, 2, 3], [4, True, 0]]),
        DtypeError,
        "labels[1][1]: must be an integer, got a bool",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, np.zeros((2, 4), np.int64)),
        ShapeError,
        "labels: expected shape (2, 3) (the logits' leading dimensions), got (2, 4)",
    ),
    (
        lambda: loss.causal_lm_loss(np.zeros(5, np.float32), np.zeros(5, np.int64)),
        ShapeError,
        "logits: expected shape (B, T, V) or (N, V), got (5,)",
    ),
    (
        lambda: loss.causal_lm_loss(np.zeros((2, 3, 0), np.float32), LABELS),
        ConfigError,
        "logits: the vocabulary dimension V must be >= 1, got 0",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, np.array([[0, 1, 2], [3, 5, 0]])),
        ConfigError,
        "labels: value 5 at position (1, 1) is outside [0, 5) and is not ignore_index (-100)",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS[0], np.array([0, -7, 1])),
        ConfigError,
        "labels: value -7 at position (1,) is outside [0, 5) and is not ignore_index (-100)",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS.astype(np.float32)),
        DtypeError,
        "causal_lm_loss labels does not support dtype float32; supported: int32, int64",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS.astype(np.int32), LABELS),
        DtypeError,
        "causal_lm_loss does not support dtype int32; supported: float32, bfloat16, float16, "
        "float64",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, reduction="avg"),
        ConfigError,
        "reduction: must be one of 'mean', 'sum', 'none', got 'avg'",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, reduction=None),
        ConfigError,
        "reduction: must be one of 'mean', 'sum', 'none', got None",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, softcap=0.0),
        ConfigError,
        "softcap: must be a finite number > 0 or None, got 0",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, softcap=-1),
        ConfigError,
        "softcap: must be a finite number > 0 or None, got -1",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, label_smoothing=1.0),
        ConfigError,
        "label_smoothing: must be in [0, 1), got 1",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, label_smoothing=-0.1),
        ConfigError,
        "label_smoothing: must be in [0, 1), got -0.1",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, z_loss_scale="big"),
        ConfigError,
        "z_loss_scale: must be a number, got 'big'",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, num_items_in_batch=0),
        ConfigError,
        "num_items_in_batch: must be a finite number > 0 or None, got 0",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, reduction="sum", num_items_in_batch=4),
        ConfigError,
        "num_items_in_batch: only applies to reduction 'mean' (it replaces the mean's divisor)",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, shift=1),
        ConfigError,
        "shift: must be True or False, got 1",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, ignore_index=-100.0),
        ConfigError,
        "ignore_index: must be an integer in [-2**63, 2**63 - 1], got -100.0",
    ),
    (
        lambda: loss.causal_lm_loss(LOGITS, LABELS, ignore_index=2**63),
        ConfigError,
        "ignore_index: must be an integer in [-2**63, 2**63 - 1], got 9223372036854775808",
    ),
    (  # equal to the default 0.0, but a bool: the defaults' shortcut must not take it
        lambda: loss.causal_lm_loss(LOGITS, LABELS, z_loss_scale=False),
        ConfigError,
        "z_loss_scale: must be a number, got False",
    ),
    (
        lambda: loss.causal_lm_loss_and_grad(LOGITS, LABELS, label_smoothing=False),
        ConfigError,
        "label_smoothing: must be a number, got False",
    ),
    (
        lambda: loss.causal_lm_loss_and_grad(LOGITS[:, ::2], LABELS[:, :2], in_place=True),
        ConfigError,
        "logits: must be a C-contiguous numpy array for in_place=True",
    ),
    (
        lambda: loss.causal_lm_loss(torch.zeros(2, 3, 5, device="meta"), torch.from_numpy(LABELS)),
        ConfigError,
        "logits: must be a CPU or CUDA tensor, got a meta tensor",
    ),
    (
        lambda: loss.causal_lm_loss_and_grad(
            torch.zeros(2, 3, 5, device="meta"), torch.from_numpy(LABELS)
        ),
        ConfigError,
        "logits: must be a CPU or CUDA tensor, got a meta tensor",
    ),
    (
        lambda: loss.causal_lm_loss(torch.zeros(2, 3, 5, dtype=torch.int8), LABELS),
        DtypeError,
        "causal_lm_loss does not support dtype int8; supported: float32, bfloat16, float16, "
        "float64",
    ),
    (
        lambda: loss.ChunkedCausalLoss(chunk_size=0),
        ConfigError,
        "chunk_size: must be an integer >= 1, got 0",
    ),
    (
        lambda: loss.CausalLoss(reduction="avg"),
        ConfigError,
        "reduction: must be one of 'mean', 'sum', 'none', got 'avg'",
    ),
]


def test_inputs_off_the_fast_path_give_the_same_results() -> None:
    """Defaults spelled differently, int32 or strided labels and strided logits take the
    validating path; the numbers must not change."""
    logits, labels = make_inputs(2, 9, 37)
    loss_value, grad = loss.causal_lm_loss_and_grad(logits, labels)
    spelled = loss.causal_lm_loss_and_grad(
        np.asfortranarray(logits), labels.astype(np.int32), z_loss_scale=0, label_smoothing=0
    )
    strided_labels = np.repeat(labels, 2, axis=1)[:, ::2]
    assert loss.causal_lm_loss(logits, strided_labels, ignore_index=-100) == loss_value
    assert spelled[0] == loss_value
    np.testing.assert_array_equal(spelled[1], grad)


def test_validated_options_are_kept_by_value_and_type() -> None:
    """Options are validated once per distinct (value, type) set: an equal value of another
    type is still checked, and a rejected set is rejected on every call."""
    logits, labels = make_inputs(2, 9, 37)
    expected = loss.causal_lm_loss(logits, labels, z_loss_scale=0.0)
    for _ in range(2):
        with pytest.raises(ConfigError, match="z_loss_scale: must be a number, got False"):
            loss.causal_lm_loss(logits, labels, z_loss_scale=False)
        with pytest.raises(ConfigError, match="reduction: must be one of"):
            loss.causal_lm_loss(logits, labels, reduction="avg")
        assert loss.causal_lm_loss(logits, labels, z_loss_scale=0) == expected
    # A tensor divisor is read on every call, never kept.
    first = loss.causal_lm_loss(logits, labels, num_items_in_batch=torch.tensor(4.0))
    second = loss.causal_lm_loss(logits, labels, num_items_in_batch=torch.tensor(8.0))
    assert first == pytest.approx(2 * second)


@pytest.mark.parametrize(("call", "error", "message"), BAD_CALLS)
def test_bad_inputs_raise_clear_errors(call, error, message) -> None:
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_bad_inputs_leave_an_in_place_buffer_untouched() -> None:
    buffer = np.ones((2, 3, 5), np.float32)
    with pytest.raises(ConfigError):
        loss.causal_lm_loss_and_grad(buffer, np.array([[0, 1, 2], [3, 9, 0]]), in_place=True)
    assert (buffer == 1).all()


@pytest.mark.parametrize("options", [{}, {"reduction": "sum"}, {"num_items_in_batch": 8}])
def test_empty_batch_gives_zero_loss(options) -> None:
    empty_logits, empty_labels = np.zeros((0, 4, 5), np.float32), np.zeros((0, 4), int)
    value, grad = loss.causal_lm_loss_and_grad(empty_logits, empty_labels, **options)
    assert value == 0.0
    assert math.copysign(1.0, value) == 1.0  # +0.0 as torch's empty sum, not -0.0
    assert grad.shape == (0, 4, 5)


@pytest.mark.parametrize(
    ("shape", "dtype", "message"),
    [
        ((4, 4), "int8", "dtype: must be one of 'float32', 'float64', 'uint16'; got 'int8'"),
        ((2**62, 8), "float32", "shape: is too large to allocate"),
    ],
)
def test_gradient_buffer_rejects_bad_requests(shape, dtype, message) -> None:
    with pytest.raises(ConfigError) as info:
        ferrofix._native.core().gradient_buffer(shape, dtype)
    assert str(info.value) == message
