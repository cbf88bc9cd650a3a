"""ferrofix inside torch.func transforms (grad, vmap, vjp, jacrev and their compositions).

References: the eager autograd path (tested against float64 references in test_loss.py),
a loop of eager calls over the samples a vmap batches, and F.cross_entropy in float64.
What cannot work inside a transform (second derivatives of the fused loss, forward-mode
AD, native code that reads a transform's tensors) raises a ferrofix error, never torch's
internal one or a silently wrong (zero) derivative.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from ferrofix import mask_tokens, noise
from ferrofix.assertions import assert_close, compare_tensors
from ferrofix.ddpm import DDPMSchedule
from ferrofix.errors import ConfigError, DtypeError, ShapeError
from ferrofix.loss import CausalLoss, causal_lm_loss, causal_lm_loss_and_grad
from ferrofix.tokenizers import SimpleTokenizer

func = torch.func
V = 13

OPTIONS = {
    "mean": {},
    "sum": {"reduction": "sum"},
    "none": {"reduction": "none"},
    "z-loss": {"z_loss_scale": 1e-2},
    "softcap": {"softcap": 2.0},
    "smoothing": {"label_smoothing": 0.1},
    "num_items_in_batch": {"num_items_in_batch": 7},
    "no shift": {"shift": False},
}


def _batch(dtype=torch.float32, batch=3, length=6):
    generator = torch.Generator().manual_seed(1)
    logits = (3 * torch.randn(batch, length, V, generator=generator, dtype=torch.float64)).to(dtype)
    labels = torch.randint(0, V, (batch, length), generator=generator)
    labels[0, 2] = -100
    labels[-1, 4] = -100
    return logits, labels


def _eager_grad(logits, labels, cotangent=None, **options):
    leaf = logits.clone().requires_grad_()
    loss = causal_lm_loss(leaf, labels, **options)
    loss.backward(torch.ones_like(loss) if cotangent is None else cotangent)
    return leaf.grad


def _scalar(loss):
    return loss.sum() if loss.dim() else loss


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_grad_is_the_eager_gradient(options, dtype) -> None:
    logits, labels = _batch(dtype)
    grad, value = func.grad_and_value(lambda x: _scalar(causal_lm_loss(x, labels, **options)))(
        logits
    )
    assert grad.dtype == dtype
    torch.testing.assert_close(grad, _eager_grad(logits, labels, **options), rtol=0, atol=0)
    eager = _scalar(causal_lm_loss(logits, labels, **options))
    torch.testing.assert_close(value, eager, rtol=0, atol=0)


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_vjp_with_a_cotangent_scales_the_gradient(options) -> None:
    logits, labels = _batch()
    loss, pullback = func.vjp(lambda x: causal_lm_loss(x, labels, **options), logits)
    cotangent = torch.linspace(-2.0, 3.0, loss.numel()).reshape(loss.shape)
    (grad,) = pullback(cotangent)
    torch.testing.assert_close(grad, _eager_grad(logits, labels, cotangent, **options))


def _reference_none(x, y):
    """Per-token causal-LM losses with F.cross_entropy (shift by slicing)."""
    rows = F.cross_entropy(x[..., :-1, :].reshape(-1, V), y[..., 1:].reshape(-1), reduction="none")
    return rows.reshape(*y.shape[:-1], y.shape[-1] - 1)


def test_jacrev_of_per_token_losses_matches_cross_entropy() -> None:
    logits, labels = _batch(torch.float64)
    ours = func.jacrev(lambda x: causal_lm_loss(x, labels, reduction="none"))(logits)
    theirs = func.jacrev(lambda x: _reference_none(x, labels))(logits)
    assert ours.shape == (3, 5, 3, 6, V)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_vmap_gives_each_sample_its_own_loss() -> None:
    logits, labels = _batch()
    loop = torch.stack(
        [causal_lm_loss(x[None], y[None]) for x, y in zip(logits, labels, strict=True)]
    )
    batched = func.vmap(lambda x, y: causal_lm_loss(x[None], y[None]))(logits, labels)
    torch.testing.assert_close(batched, loop, rtol=0, atol=0)
    # The mean over each sample's own tokens, not the batch's.
    assert not torch.allclose(batched.mean(), causal_lm_loss(logits, labels))


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_per_sample_gradients_equal_a_loop_of_eager_ones(options) -> None:
    logits, labels = _batch()

    def loss_of(x, y):
        return _scalar(causal_lm_loss(x[None], y[None], **options))

    batched = func.vmap(func.grad(loss_of))(logits, labels)
    for i in range(len(logits)):
        eager = _eager_grad(logits[i : i + 1], labels[i : i + 1], **options)[0]
        torch.testing.assert_close(batched[i], eager, rtol=0, atol=0)


def test_per_sample_parameter_gradients_of_a_model_match_cross_entropy() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(V, V).double()
    params = {name: p.detach() for name, p in model.named_parameters()}
    logits, labels = _batch(torch.float64)

    def per_sample(loss_fn):
        def loss_of(p, x, y):
            return loss_fn(func.functional_call(model, p, (x[None],)), y[None])

        return func.vmap(func.grad(loss_of), in_dims=(None, 0, 0))(params, logits, labels)

    ours = per_sample(CausalLoss())

    def reference_mean(x, y):  # no boolean indexing: vmap cannot batch it
        return _reference_none(x, y).sum() / (y[..., 1:] != -100).sum()

    theirs = per_sample(reference_mean)
    for name in params:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("in_dims", [(0, 0), (1, 1), (0, None), (None, 0)], ids=str)
def test_vmap_over_either_argument_and_any_dimension(in_dims) -> None:
    logits, labels = _batch()
    moved_logits = logits.movedim(0, in_dims[0]) if in_dims[0] is not None else logits[0]
    moved_labels = labels.movedim(0, in_dims[1]) if in_dims[1] is not None else labels[0]
    batched = func.vmap(lambda x, y: causal_lm_loss(x, y, reduction="none"), in_dims=in_dims)(
        moved_logits, moved_labels
    )
    for i in range(3):
        x = logits[i] if in_dims[0] is not None else logits[0]
        y = labels[i] if in_dims[1] is not None else labels[0]
        torch.testing.assert_close(batched[i], causal_lm_loss(x, y, reduction="none"))


def test_loss_and_grad_under_vmap_equals_a_loop() -> None:
    logits, labels = _batch()
    losses, grads = func.vmap(lambda x, y: causal_lm_loss_and_grad(x, y))(logits, labels)
    for i in range(3):
        loss, grad = causal_lm_loss_and_grad(logits[i], labels[i])
        assert losses[i].item() == torch.tensor(loss, dtype=torch.float32).item()
        torch.testing.assert_close(grads[i], grad, rtol=0, atol=0)


def test_the_returned_lse_is_differentiable_under_grad() -> None:
    logits, labels = _batch(torch.float64)

    def lse_sum(x):
        return causal_lm_loss(x, labels, return_lse=True, softcap=3.0)[1].nansum()

    leaf = logits.clone().requires_grad_()
    lse_sum(leaf).backward()
    torch.testing.assert_close(func.grad(lse_sum)(logits), leaf.grad, rtol=0, atol=0)


def test_an_empty_vmap_batch_gives_empty_outputs() -> None:
    logits = torch.zeros(0, 2, 4, V)
    labels = torch.zeros(0, 2, 4, dtype=torch.long)
    out = func.vmap(lambda x, y: causal_lm_loss(x, y, reduction="none"))(logits, labels)
    assert out.shape == (0, 2, 3)
    losses, grads = func.vmap(causal_lm_loss_and_grad)(logits, labels)
    assert losses.shape == (0,)
    assert grads.shape == (0, 2, 4, V)


SECOND_ORDER = {
    "grad of grad": lambda f, x: func.grad(lambda z: func.grad(f)(z).sum())(x),
    "jacrev of jacrev": lambda f, x: func.jacrev(func.jacrev(f))(x),
}
FORWARD_MODE = {
    "jvp": lambda f, x: func.jvp(f, (x,), (torch.ones_like(x),)),
    "jacfwd": lambda f, x: func.jacfwd(f)(x),
    "hessian": lambda f, x: func.hessian(f)(x),
}


@pytest.mark.parametrize("transform", SECOND_ORDER.values(), ids=SECOND_ORDER.keys())
def test_second_derivatives_are_refused_not_zero(transform) -> None:
    logits, labels = _batch(torch.float64, batch=1)
    with pytest.raises(ConfigError, match=r"second derivatives .* not supported"):
        transform(lambda x: causal_lm_loss(x, labels[0]), logits[0])


@pytest.mark.parametrize("transform", FORWARD_MODE.values(), ids=FORWARD_MODE.keys())
def test_forward_mode_is_refused(transform) -> None:
    logits, labels = _batch(torch.float64, batch=1)
    with warnings.catch_warnings():
        # torch.func's forward mode imports code that warns about torch.jit.script.
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
        with pytest.raises(ConfigError, match=r"forward-mode differentiation .* not supported"):
            transform(lambda x: causal_lm_loss(x, labels[0]), logits[0])


BAD_INPUTS = [
    ("float labels", lambda x, y: causal_lm_loss(x, y.double()), DtypeError, "labels"),
    ("label out of range", lambda x, y: causal_lm_loss(x, y + V), ConfigError, "outside"),
    ("labels' shape", lambda x, y: causal_lm_loss(x, y[:-1]), ShapeError, "labels"),
    ("integer logits", lambda x, y: causal_lm_loss(x.long(), y), DtypeError, "int64"),
    ("unknown reduction", lambda x, y: causal_lm_loss(x, y, reduction="avg"), ConfigError, "mean"),
    (
        "in place",
        lambda x, y: causal_lm_loss_and_grad(x, y, in_place=True),
        ConfigError,
        "in_place: the logits of a torch.func transform",
    ),
    (
        "num_items_in_batch per sample",
        lambda x, y: causal_lm_loss(x, y, num_items_in_batch=y[0].double() + 200),
        ConfigError,
        "num_items_in_batch: must be a number or None, got a tensor that torch.func.vmap",
    ),
    (
        "ignore_index per sample",
        lambda x, y: causal_lm_loss(x, y, ignore_index=y[0]),
        ConfigError,
        "ignore_index: must be an integer, got a tensor that torch.func.vmap batches",
    ),
    (
        "mask_tokens",
        lambda x, y: mask_tokens(y.clamp(min=0), 0.5, 1, seed=0),
        ConfigError,
        "input_ids: a tensor batched by torch.func.vmap",
    ),
    (
        "compare_tensors",
        lambda x, y: compare_tensors(x, x),
        ConfigError,
        "actual: a tensor batched by torch.func.vmap",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_inputs_under_vmap_are_ferrofix_errors(call, error, match) -> None:
    logits, labels = _batch()
    with pytest.raises(error, match=match):
        func.vmap(call)(logits, labels)


SCHEDULES = [noise.LogLinearSchedule(), noise.CosineSchedule(), noise.GeometricSchedule()]
QUANTITIES = ["total_noise", "noise_rate", "mask_probability", "alpha", "loss_weight"]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_schedules_under_vmap_match_the_eager_values(schedule) -> None:
    t = torch.linspace(0.01, 0.99, 12, dtype=torch.float64).reshape(3, 4)
    for quantity in QUANTITIES:
        batched = func.vmap(getattr(schedule, quantity))(t)
        torch.testing.assert_close(batched, getattr(schedule, quantity)(t), rtol=1e-14, atol=0)
    sigma = schedule.total_noise(t)
    inverse = func.vmap(schedule.t_from_total_noise)(sigma)
    torch.testing.assert_close(inverse, t, rtol=1e-12, atol=1e-14)


def test_schedule_derivatives_under_grad_and_jvp_are_the_noise_rate() -> None:
    schedule = noise.LogLinearSchedule()
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    rate = schedule.noise_rate(t)
    per_sample = func.vmap(func.grad(schedule.total_noise))(t)
    torch.testing.assert_close(per_sample, rate, rtol=1e-12, atol=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
        _, tangent = func.jvp(schedule.total_noise, (t,), (torch.ones_like(t),))
    torch.testing.assert_close(tangent, rate, rtol=1e-12, atol=0)


def test_schedule_domain_errors_under_vmap_name_the_value() -> None:
    t = torch.tensor([[0.5, 0.25], [0.75, 1.5]], dtype=torch.float64)
    with pytest.raises(ConfigError, match=r"t: must be in \[0, 1\], got 1.5"):
        func.vmap(noise.LogLinearSchedule().total_noise)(t)


# Inside a transform even a tensor captured from outside has no memory .numpy() can reach;
# ferrofix reads it with the transform's dispatch off, and grad's wrappers are peeled.


def test_mask_tokens_on_captured_ids_inside_grad_gives_the_eager_mask() -> None:
    ids = torch.randint(0, 10, (4, 6), generator=torch.Generator().manual_seed(0))
    _, eager_mask = mask_tokens(ids, 0.5, 99, seed=3)

    def masked_sum(weights):
        return (weights * mask_tokens(ids, 0.5, 99, seed=3)[1]).sum()

    grad = func.grad(masked_sum)(torch.randn(4, 6))
    torch.testing.assert_close(grad, eager_mask.float(), rtol=0, atol=0)
    # Inside vmap, too, for a tensor that is not the one vmapped over.
    product = func.vmap(lambda w: w * mask_tokens(ids, 0.5, 99, seed=3)[1])(torch.ones(2, 4, 6))
    torch.testing.assert_close(product, eager_mask.float().expand(2, 4, 6), rtol=0, atol=0)


def test_ddpm_add_noise_inside_grad_has_the_schedule_coefficient_as_gradient() -> None:
    schedule = DDPMSchedule(num_timesteps=50)
    generator = torch.Generator().manual_seed(0)
    x0, noise_ = (
        torch.randn(2, 3, 4, generator=generator),
        torch.randn(2, 3, 4, generator=generator),
    )
    timesteps = torch.tensor([3, 41])
    grad = func.grad(lambda x: schedule.add_noise(x, noise_, timesteps).sum())(x0)
    keep = torch.from_numpy(schedule.alphas_cumprod[[3, 41]]).sqrt().reshape(2, 1, 1)
    torch.testing.assert_close(grad, keep.expand(2, 3, 4), rtol=0, atol=0)


def test_reading_native_inputs_inside_grad() -> None:
    logits, labels = _batch()
    schedule = noise.LogLinearSchedule()
    t = torch.tensor([0.25, 0.5], dtype=torch.float64)
    eager_loss = causal_lm_loss(logits, labels)
    tokenizer = SimpleTokenizer.for_numbers(10)

    def uses_everything(scale):
        assert tokenizer.decode(torch.tensor([8, 9])) == "1 2"
        assert_close(scale, scale.detach())  # a grad-tracking tensor, read as its values
        return scale * causal_lm_loss(logits, labels) + (scale * schedule.total_noise(t)).sum()

    grad = func.grad(uses_everything)(torch.tensor(2.0, dtype=torch.float64))
    expected = eager_loss.double() + schedule.total_noise(t).sum()
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=0)
