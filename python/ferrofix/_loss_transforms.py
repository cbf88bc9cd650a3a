"""The causal-LM loss inside torch.func transforms (``grad``, ``vmap``, ``jacrev``, ...).

A transform hands the loss wrapper tensors that have no memory the native kernels can
read. torch runs an ``autograd.Function`` under a transform only when its forward takes no
``ctx`` (``setup_context`` saves what backward needs) and it says how to vmap: so the
autograd path of :mod:`ferrofix.loss`, which keeps the fused gradient on ``ctx`` and hands
its buffer to autograd without a copy, cannot be used there. This Function returns the
gradient as a third, non-differentiable output instead and saves it; backward scales it
out of place (a vmapped backward, as ``jacrev`` runs, takes a batch of upstream gradients).

Under ``vmap`` each sample is one native call, so each sample's loss is its own (a mean
over its own tokens), exactly as a loop over the samples would give. Second derivatives
and forward-mode AD (``jvp``, ``jacfwd``, ``hessian``) are refused: the fused gradient is
not differentiable again, and without the refusal they would silently come out as zero.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ferrofix import _torch
from ferrofix.errors import ConfigError

if TYPE_CHECKING:
    from ferrofix.loss import _Options

_FORWARD_MODE = (
    "causal_lm_loss: forward-mode differentiation (torch.func.jvp, jacfwd, hessian) is not "
    "supported; use reverse mode (torch.func.grad, vjp, jacrev) or F.cross_entropy there"
)


def loss(logits: Any, labels: Any, options: _Options, return_lse: bool) -> tuple[Any, Any]:
    """``(loss, lse)`` of :func:`ferrofix.loss.causal_lm_loss` for transformed tensors."""
    loss_value, lse, _ = _function().apply(logits, labels, options)
    return loss_value, lse if return_lse else None


def loss_and_grad(logits: Any, labels: Any, options: _Options) -> tuple[Any, Any]:
    """``(loss, grad)`` of :func:`ferrofix.loss.causal_lm_loss_and_grad` for transformed
    tensors (under ``vmap``, each sample's gradient)."""
    loss_value, _, grad = _function().apply(logits, labels, options)
    return loss_value, grad


@functools.cache
def _function() -> type:
    torch = _torch.loaded_torch()
    from ferrofix.loss import (
        _first_order_only,
        _row_scale,
        _torch_forward,
        _with_lse_gradient,
    )

    # Applying a Function under a transform imports torch._dynamo on first use; torch 2.3
    # fails that import inside a transform ("clone is not supported by NestedIntSymNode")
    # and leaves torch._dynamo half-initialised for the rest of the process. Imported with
    # the transform's dispatch off, it loads as it does outside.
    with torch._C._DisableFuncTorch():
        import torch._dynamo

    class TransformableCausalLMLoss(torch.autograd.Function):
        """``(loss, lse, grad)`` of plain tensors; differentiable in ``logits``."""

        @staticmethod
        def forward(logits: Any, labels: Any, options: _Options) -> Any:  # type: ignore[override]
            return _torch_forward(logits, labels, options, True, with_grad=True)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            logits, _, ctx.options = inputs
            _, lse, grad = output
            ctx.mark_non_differentiable(grad)
            ctx.save_for_backward(logits, lse, grad)
            ctx.set_materialize_grads(False)  # an unused output's gradient stays None

        @staticmethod
        def backward(ctx: Any, grad_loss: Any, grad_lse: Any, _grad_grad: Any) -> Any:  # type: ignore[override]
            logits, lse, grad = ctx.saved_tensors
            options = ctx.options
            total = None
            if grad_loss is not None:
                if options.reduction == "none":
                    total = grad * _row_scale(grad_loss, grad.dtype, options)
                else:
                    total = grad * grad_loss.to(grad.dtype)
            if grad_lse is not None:
                total = _with_lse_gradient(total, logits, lse, grad_lse, options)
            if total is not None:
                total = _first_order_only().apply(total, logits)
            return total, None, None

        @staticmethod
        def jvp(ctx: Any, *tangents: Any) -> Any:
            raise ConfigError(_FORWARD_MODE)

        @staticmethod
        def vmap(info: Any, in_dims: Any, logits: Any, labels: Any, options: _Options) -> Any:
            # One call per sample: each sample's reduction is its own, as in a loop.
            samples = [
                _sample(value, dim, info.batch_size)
                for value, dim in zip((logits, labels), in_dims[:2], strict=True)
            ]
            if info.batch_size == 0:  # no samples, but the outputs need one sample's shapes
                probe = [value.new_zeros(value.shape[1:]) for value in samples]
                outputs = TransformableCausalLMLoss.apply(*probe, options)
                return tuple(out.new_empty((0, *out.shape)) for out in outputs), (0, 0, 0)
            outputs = [
                TransformableCausalLMLoss.apply(x, y, options)
                for x, y in zip(*samples, strict=True)
            ]
            return tuple(torch.stack(parts) for parts in zip(*outputs, strict=True)), (0, 0, 0)

    return TransformableCausalLMLoss


def _sample(value: Any, dim: int | None, size: int) -> Any:
    """``value`` with the vmapped dimension first (repeated when not vmapped over)."""
    if dim is None:
        return value.expand(size, *value.shape)
    return value.movedim(dim, 0)
