"""ferrofix's tensor entry points inside torch.compile: each runs eagerly as a clean graph
break (torch.compiler.disable), so a compiled training step gives the eager results and
dynamo has nothing of ours to warn about (it warned that it could not trace the
extension's functions, an error under ``-W error``)."""

from __future__ import annotations

import warnings

import pytest
import torch
from ferrofix import noise
from ferrofix.loss import CausalLoss, causal_lm_loss, causal_lm_loss_and_grad

# torch 2.2's dynamo still traces into a function that torch.compiler.disable wraps while
# it traces the wrapping (ferrofix creates it on the first compiled call), so the first
# compiled call there warns as it did before ferrofix ran eagerly under compile.
pytestmark = pytest.mark.skipif(
    tuple(int(part) for part in torch.__version__.split(".")[:2]) < (2, 3),
    reason="ferrofix's eager graph break under torch.compile needs torch 2.3 or later",
)

SCHEDULE = noise.LogLinearSchedule()


def _inputs():
    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(8, 50)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(50, 8, generator=generator))
    hidden = torch.randn(2, 6, 8, generator=generator)
    labels = torch.randint(0, 50, (2, 6), generator=generator)
    labels[0, 2] = -100
    t = torch.rand(2, generator=generator)
    return layer, hidden, labels, t


STEPS = {
    "causal_lm_loss": lambda layer, h, y, t: causal_lm_loss(layer(h), y) * 2 + layer(h).mean(),
    "reduction none and lse": lambda layer, h, y, t: (
        causal_lm_loss(layer(h), y, reduction="none").sum()
        + causal_lm_loss(layer(h), y, return_lse=True)[1].nansum()
    ),
    "CausalLoss as HF calls it": lambda layer, h, y, t: CausalLoss(z_loss_scale=1e-3)(
        layer(h), y, vocab_size=50, num_items_in_batch=torch.tensor(9)
    ),
    "schedule then masking": lambda layer, h, y, t: (
        layer(h)
        .sum(-1)[noise.mask_tokens(y.clamp(min=0), SCHEDULE.mask_probability(t), 0, seed=3)[1]]
        .sum()
        + SCHEDULE.forward(t)[0].sum() * layer.bias.sum()
    ),
}


@pytest.mark.parametrize(
    ("name", "backend"),
    # aot_eager (autograd traced ahead of time) once: the step is ours either way.
    [(name, "eager") for name in STEPS] + [("causal_lm_loss", "aot_eager")],
)
def test_a_compiled_step_matches_eager_without_warnings(name: str, backend: str) -> None:
    step = STEPS[name]
    layer, hidden, labels, t = _inputs()
    expected = step(layer, hidden, labels, t)
    expected.backward()
    expected_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad(set_to_none=True)
    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = torch.compile(step, backend=backend)(layer, hidden, labels, t)
        got.backward()
    torch._dynamo.reset()
    torch.testing.assert_close(got, expected)
    for param, grad in zip(layer.parameters(), expected_grads, strict=True):
        torch.testing.assert_close(param.grad, grad)
    assert [str(w.message) for w in caught] == []


def test_the_gradient_function_runs_eagerly_under_compile() -> None:
    layer, hidden, labels, _ = _inputs()
    logits = layer(hidden).detach()
    expected_loss, expected_grad = causal_lm_loss_and_grad(logits, labels)
    torch._dynamo.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss, grad = torch.compile(causal_lm_loss_and_grad, backend="eager")(logits, labels)
    torch._dynamo.reset()
    assert loss == expected_loss
    assert torch.equal(grad, expected_grad)
    assert [str(w.message) for w in caught] == []


def test_under_warnings_as_errors_only_torchs_own_graph_break_warning_needs_allowing() -> None:
    """torch raises at any graph break a non-leaf tensor crosses under -W error; with that
    one warning allowed, nothing of ferrofix's is left to fail the compiled step."""
    layer, hidden, labels, _ = _inputs()
    step = STEPS["causal_lm_loss"]
    expected = step(layer, hidden, labels, None)
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not")
        got = torch.compile(step, backend="eager")(layer, hidden, labels, None)
    torch._dynamo.reset()
    torch.testing.assert_close(got, expected)
