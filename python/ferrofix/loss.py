"""Fused causal-LM cross-entropy: exact, memory-flat, numpy and torch autograd (CPU, CUDA).

``causal_lm_loss(logits, labels)`` is the loss an LM suite computes as
``F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1))``, without the
shifted copy and without the float32 log-softmax torch materialises: each row's
log-sum-exp is computed in one streaming pass and, when a gradient is wanted, the scaled
``softmax - onehot`` is written in a second pass, in the logits' dtype. Extra memory beyond
the gradient is O(rows).

Semantics (shared with the CUDA kernels):

- logits ``(B, T, V)`` with labels ``(B, T)``, or ``(N, V)`` with ``(N,)`` (one sequence);
  with ``shift=True`` position ``t`` predicts label ``t + 1`` and each last position
  contributes nothing.
- ``ignore_index`` labels contribute nothing; ``mean`` divides by the number of
  contributing tokens (or by ``num_items_in_batch``, the HF/TRL gradient-accumulation
  convention); when every token is ignored the mean is exactly 0.0 with a zero gradient.
- ``reduction="none"`` returns per-token losses shaped like the labels, minus the
  last position when shifting: ``(B, T - 1)`` or ``(N - 1,)``; ignored tokens get 0.
- ``z_loss_scale`` adds ``scale * lse**2``; ``softcap`` applies ``s * tanh(x / s)`` to the
  logits first; ``label_smoothing`` is torch's (and Liger's) definition.
- Losses are float32 for 16- and 32-bit logits (float64 for float64); row sums are
  accumulated in float64 in a fixed order, so results do not depend on the thread count.
- NaN or +inf logits give a NaN loss for their row (never a crash); -inf logits (masked
  vocabulary entries) get probability 0.
- Non-contiguous inputs are copied once to be contiguous.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ferrofix import _native, _torch
from ferrofix._args import choice, flag, integer, number, optional_number
from ferrofix._arrays import (
    as_array,
    c_contiguous,
    dtype_name,
    native_byte_order,
    rectangular,
    shape_of,
)
from ferrofix.errors import ConfigError, DtypeError, ShapeError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CausalLoss",
    "ChunkedCausalLoss",
    "causal_lm_loss",
    "causal_lm_loss_and_grad",
    "release_gradient_buffers",
]

_SUPPORTED = "float32, bfloat16, float16, float64"
_REDUCTIONS = ("mean", "sum", "none")
_SIXTEEN_BIT = ("float16", "bfloat16")  # bfloat16 numpy arrays come from ml_dtypes


class _Options:
    """Validated keyword options, in the order the native call takes them."""

    @classmethod
    def of(cls, *args: object) -> _Options:
        """The options (``__init__``'s arguments), validated. A small loss call is only a
        few microseconds of work, so options made of plain values are validated once and
        kept, keyed by value and type (``False`` is not ``0.0``); others (a tensor
        ``num_items_in_batch``) are validated on every call.
        """
        types = tuple(map(type, args))
        if not _PLAIN_TYPES.issuperset(types):
            return cls(*args)
        key = (args, types)
        options = _known_options.get(key)
        if options is None:
            options = cls(*args)
            if len(_known_options) < _MAX_KNOWN_OPTIONS:
                _known_options[key] = options
        return options

    def __init__(
        self,
        ignore_index: object,
        reduction: object,
        shift: object,
        z_loss_scale: object,
        softcap: object,
        label_smoothing: object,
        num_items_in_batch: object,
    ) -> None:
        ignore_index = integer("ignore_index", ignore_index, low=-(2**63), high=2**63 - 1)
        reduction = choice("reduction", reduction, _REDUCTIONS)
        shift = flag("shift", shift)
        self.reduction = reduction
        self.kwargs = {
            "shift": shift,
            "ignore_index": ignore_index,
            "reduction": reduction,
            "z_loss_scale": number("z_loss_scale", z_loss_scale),
            "softcap": optional_number("softcap", softcap),
            "label_smoothing": number("label_smoothing", label_smoothing),
            "num_items_in_batch": optional_number("num_items_in_batch", num_items_in_batch),
        }


_PLAIN_TYPES = frozenset((int, float, str, bool, type(None)))
_MAX_KNOWN_OPTIONS = 256
_known_options: dict[tuple[tuple[object, ...], tuple[type, ...]], _Options] = {}


def _numpy_logits(logits: Any) -> tuple[np.ndarray, str]:
    import numpy as np

    if type(logits) is np.ndarray and logits.dtype.isnative and c_contiguous(logits) is logits:
        name = dtype_name(logits)
        if name in ("float32", "float64"):
            return logits, name  # the common case, without the checks and copies below
    array = native_byte_order(rectangular("logits", logits))
    name = dtype_name(array)
    if name in _SIXTEEN_BIT:  # the native layer takes 16-bit floats as their bits
        array = array.view(np.uint16)
    elif name not in ("float32", "float64"):
        raise DtypeError(f"causal_lm_loss does not support dtype {name}; supported: {_SUPPORTED}")
    return c_contiguous(array), name


def _numpy_labels(labels: Any) -> np.ndarray:
    import numpy as np

    if type(labels) is np.ndarray and labels.dtype in (np.int64, np.int32):
        return c_contiguous(labels)
    is_tensor = _torch.is_tensor(labels)
    array = _torch.host_array(labels, "labels") if is_tensor else as_array("labels", labels)
    if array.dtype.kind in "iu" and array.dtype not in (np.int32, np.int64):
        array = array.astype(np.int64)
    return c_contiguous(array)


def _per_token(per_row: np.ndarray, labels_shape: tuple[int, ...], shift: bool) -> np.ndarray:
    """Per-row losses shaped like the labels, minus each last position when shifting."""
    shaped = per_row.reshape(labels_shape)
    return shaped[..., :-1] if shift else shaped


def _native_call(
    logits: np.ndarray,
    dtype: str,
    labels: np.ndarray,
    options: _Options,
    *,
    grad: np.ndarray | None = None,
    in_place: bool = False,
    return_lse: bool = False,
) -> tuple[float, np.ndarray | None, np.ndarray | None, int]:
    return _native.core().causal_lm_loss(
        logits,
        dtype,
        labels,
        grad=grad,
        in_place=in_place,
        return_lse=return_lse,
        **options.kwargs,
    )


@_torch.eager_under_compile
def causal_lm_loss(
    logits: Any,
    labels: Any,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    shift: bool = True,
    z_loss_scale: float = 0.0,
    softcap: float | None = None,
    label_smoothing: float = 0.0,
    num_items_in_batch: Any = None,
    return_lse: bool = False,
) -> Any:
    """Causal-LM cross-entropy of ``logits`` against ``labels``.

    Args:
        logits: ``(B, T, V)`` or ``(N, V)``; a numpy array (float32/float16/float64, or
            ml_dtypes bfloat16), a torch CPU tensor (float32/bfloat16/float16/float64) or a
            torch CUDA tensor (float32/bfloat16/float16; ferrofix's CUDA kernels, on the
            current stream; labels may live on any device).
        labels: ``(B, T)`` or ``(N,)`` integer ids, before the shift.
        ignore_index: Label value that contributes nothing.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        shift: Score position ``t`` against label ``t + 1`` (causal LM). False: label ``t``.
        z_loss_scale: Adds ``z_loss_scale * lse**2`` per token (0 disables).
        softcap: Applies ``softcap * tanh(logits / softcap)`` first (None disables).
        label_smoothing: In [0, 1).
        num_items_in_batch: Divisor of the summed loss instead of the number of
            contributing tokens (``reduction="mean"`` only).
        return_lse: Also return each row's log-sum-exp (float32, shaped like the labels;
            NaN where the row contributes nothing). For torch logits it is differentiable
            (a term built on it, such as a hand-written z-loss, gets its gradient).

    Returns:
        numpy in: a float (``mean``/``sum``) or an array (``none``; float32, or float64 for
        float64 logits). torch in: a tensor with autograd (the gradient is computed in the
        forward pass when logits require grad and grad mode is on). With ``return_lse``,
        ``(loss, lse)``.

    Raises:
        ShapeError: logits and labels do not fit together.
        ConfigError: a bad option, a label outside ``[0, V)`` (the message names its
            position) or ``V == 0``.
        DtypeError: unsupported logits or labels dtype.
        CudaUnavailableError: CUDA tensors on a machine without a usable driver.
    """
    options = _Options.of(
        ignore_index, reduction, shift, z_loss_scale, softcap, label_smoothing, num_items_in_batch
    )
    return_lse = flag("return_lse", return_lse)
    if _torch.is_tensor(logits):
        return _torch_loss(logits, labels, options, return_lse)
    array, dtype = _numpy_logits(logits)
    label_array = _numpy_labels(labels)
    loss, per_row, lse, _ = _native_call(array, dtype, label_array, options, return_lse=return_lse)
    result = loss if per_row is None else _per_token(per_row, label_array.shape, shift)
    if return_lse:
        return result, lse.reshape(label_array.shape)
    return result


@_torch.eager_under_compile
def causal_lm_loss_and_grad(
    logits: Any,
    labels: Any,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    shift: bool = True,
    z_loss_scale: float = 0.0,
    softcap: float | None = None,
    label_smoothing: float = 0.0,
    num_items_in_batch: Any = None,
    in_place: bool = False,
) -> tuple[Any, Any]:
    """The loss and its gradient with respect to ``logits``, in one fused pass.

    Takes the arguments of :func:`causal_lm_loss` (numpy arrays or torch tensors,
    no autograd). The gradient has the logits' shape and dtype and is already scaled by
    the reduction (for ``"none"``, each row's unscaled gradient). ``in_place=True``
    overwrites ``logits`` with the gradient and returns it, for callers that no longer
    need the logits (the logits must then be contiguous and writable, and a tensor not a
    leaf that requires grad). As with torch's in-place operations, autograd learns of the
    write: a later backward through an operation that saved the logits raises.

    Returns:
        ``(loss, grad)``; the loss as :func:`causal_lm_loss` returns it for numpy input,
        except for CUDA tensors, where it stays a float32 device tensor (no host copy).
    """
    options = _Options.of(
        ignore_index, reduction, shift, z_loss_scale, softcap, label_smoothing, num_items_in_batch
    )
    in_place = flag("in_place", in_place)
    is_tensor = _torch.is_tensor(logits)
    if is_tensor and _torch.in_transform(logits, labels):
        return _loss_and_grad_in_transform(logits, labels, options, in_place)
    if is_tensor and _check_device(logits) == "cuda":
        return _cuda_loss_and_grad(logits, labels, options, in_place)
    if is_tensor:
        tensor = logits.detach()
        dtype = _cpu_tensor_dtype(tensor)
        if in_place:
            _torch.check_in_place(logits)
        array = _torch.numpy_view(tensor, "logits", dtype)
    elif in_place:
        import numpy as np

        if not (isinstance(logits, np.ndarray) and logits.flags.c_contiguous):
            raise ConfigError("logits: must be a C-contiguous numpy array for in_place=True")
        _, dtype = _numpy_logits(logits[:0])  # dtype check only
        array = logits.view(np.uint16) if dtype in _SIXTEEN_BIT else logits
    else:
        array, dtype = _numpy_logits(logits)
    label_array = _numpy_labels(labels)
    if in_place:
        grad_array = array
        loss, per_row, _, _ = _native_call(array, dtype, label_array, options, in_place=True)
        grad: Any = logits
        if is_tensor:
            _torch.mark_overwritten(logits)
    else:
        if is_tensor:
            grad_array, grad = _gradient_like_tensor(tensor, dtype)
        else:
            grad_array = _gradient_buffer(array)
            grad = grad_array.view(logits.dtype) if dtype in _SIXTEEN_BIT else grad_array
        loss, per_row, _, _ = _native_call(array, dtype, label_array, options, grad=grad_array)
    result = loss if per_row is None else _per_token(per_row, label_array.shape, shift)
    return result, grad


def _loss_and_grad_in_transform(
    logits: Any, labels: Any, options: _Options, in_place: bool
) -> tuple[Any, Any]:
    if in_place:
        raise ConfigError(
            "in_place: the logits of a torch.func transform (vmap, grad, ...) cannot be "
            "overwritten with their gradient; use in_place=False"
        )
    _check_tensor_logits(logits)
    from ferrofix import _loss_transforms

    return _loss_transforms.loss_and_grad(logits, labels, options)


def _gradient_buffer(array: np.ndarray) -> np.ndarray:
    """An uninitialised array shaped and typed like ``array`` (float32, float64 or the
    uint16 bits of 16-bit floats). Large ones come from the native buffer pool, whose
    memory is reused once no array or tensor views it: fresh pages cost the kernel more to
    fault in and zero than the gradient costs to compute."""
    core = _native.core()
    if array.nbytes < core.MIN_POOLED_BYTES:
        import numpy as np

        return np.empty_like(array)  # the same as the native layer does, with less overhead
    return core.gradient_buffer(array.shape, dtype_name(array))


def _gradient_like_tensor(tensor: Any, name: str) -> tuple[np.ndarray, Any]:
    """An uninitialised gradient buffer for a CPU tensor whose dtype is ``name``: ``(numpy
    array the native layer writes, tensor of the tensor's dtype sharing that memory)``; large
    ones from the native buffer pool, as :func:`_gradient_buffer` decides for numpy."""
    torch = _torch.loaded_torch()
    core = _native.core()
    if tensor.nbytes < core.MIN_POOLED_BYTES:  # torch's allocator is quicker for small ones
        grad = torch.empty_like(tensor, memory_format=torch.contiguous_format)
        return _torch.numpy_view(grad, "grad", name), grad
    sixteen_bit = name in _SIXTEEN_BIT
    array = core.gradient_buffer(tuple(tensor.shape), "uint16" if sixteen_bit else name)
    if not sixteen_bit:
        return array, torch.from_numpy(array)
    return array, torch.from_numpy(array.view("int16")).view(tensor.dtype)


def release_gradient_buffers() -> int:
    """Free the idle gradient buffers the CPU loss keeps for reuse; returns the bytes freed.

    The loss hands out gradients in memory that returns to a small pool (at most two
    buffers) once no array or tensor views it, so a training loop's next step reuses it
    instead of faulting in fresh pages. Call this to give that memory back early.
    """
    return _native.core().release_gradient_buffers()


def _check_device(tensor: Any) -> str:
    """``"cpu"`` or ``"cuda"``; any other device is an error naming the allowed ones."""
    kind = tensor.device.type
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"logits: must be a CPU or CUDA tensor, got a {kind} tensor")
    return kind


def _cpu_tensor_dtype(tensor: Any) -> str:
    """The dtype name of CPU logits, refused unless the CPU kernels take it."""
    name = _torch.dtype_name(tensor)
    if name not in ("float32", "float64", "float16", "bfloat16"):
        raise DtypeError(f"causal_lm_loss does not support dtype {name}; supported: {_SUPPORTED}")
    return name


def _check_tensor_logits(logits: Any) -> None:
    """Refuse tensor logits on a device or (on the CPU) of a dtype the kernels do not take."""
    if _check_device(logits) == "cpu":
        _cpu_tensor_dtype(logits)


def _torch_loss(logits: Any, labels: Any, options: _Options, return_lse: bool) -> Any:
    torch = _torch.loaded_torch()
    _check_tensor_logits(logits)
    if _torch.in_transform(logits, labels):
        from ferrofix import _loss_transforms

        loss, lse = _loss_transforms.loss(logits, labels, options, return_lse)
    elif logits.requires_grad and torch.is_grad_enabled():
        loss, lse = _autograd_function().apply(logits, labels, options, return_lse)
    else:
        loss, lse, _ = _torch_forward(logits, labels, options, return_lse, with_grad=False)
    return (loss, lse) if return_lse else loss


def _torch_forward(
    logits: Any, labels: Any, options: _Options, return_lse: bool, *, with_grad: bool
) -> tuple[Any, Any, Any]:
    """Run the kernels on a tensor; returns (loss tensor, lse tensor or None, grad)."""
    if logits.device.type == "cuda":
        return _cuda_forward(logits, labels, options, return_lse, with_grad=with_grad)
    torch = _torch.loaded_torch()
    source = logits.detach()
    name = _torch.dtype_name(source)
    array = _torch.numpy_view(source, "logits", name)
    label_array = _numpy_labels(labels)
    grad_array, grad = _gradient_like_tensor(source, name) if with_grad else (None, None)
    loss, per_row, lse, _ = _native_call(
        array,
        name,
        label_array,
        options,
        grad=grad_array,
        return_lse=return_lse,
    )
    out_dtype = torch.float64 if name == "float64" else torch.float32
    shift = options.kwargs["shift"]
    if per_row is None:
        loss_tensor = torch.full((), loss, dtype=out_dtype)  # half torch.tensor's cost
    else:
        loss_tensor = torch.from_numpy(_per_token(per_row, label_array.shape, shift).copy())
    lse_tensor = None if lse is None else torch.from_numpy(lse.reshape(label_array.shape))
    return loss_tensor, lse_tensor, grad


def _cuda_forward(
    logits: Any, labels: Any, options: _Options, return_lse: bool, *, with_grad: bool
) -> tuple[Any, Any, Any]:
    """The CUDA kernels' results shaped as :func:`_torch_forward` returns them."""
    from ferrofix import _cuda

    loss, lse, grad = _cuda.causal_lm_loss(logits, labels, options, with_grad=with_grad)
    return _cuda_shaped(loss, logits, options), _cuda_lse(lse, logits, return_lse), grad


def _cuda_shaped(loss: Any, logits: Any, options: _Options) -> Any:
    """Per-row losses shaped like the labels (minus each last position when shifting)."""
    if options.reduction != "none":
        return loss
    shaped = loss.reshape(logits.shape[:-1])
    return shaped[..., :-1] if options.kwargs["shift"] else shaped


def _cuda_lse(lse: Any, logits: Any, return_lse: bool) -> Any:
    return lse.reshape(logits.shape[:-1]) if return_lse else None


def _cuda_loss_and_grad(logits: Any, labels: Any, options: _Options, in_place: bool) -> Any:
    """:func:`causal_lm_loss_and_grad` for CUDA tensors: the loss stays a device tensor."""
    from ferrofix import _cuda

    loss, _, grad = _cuda.causal_lm_loss(logits, labels, options, with_grad=True, in_place=in_place)
    if in_place:
        _torch.mark_overwritten(logits)
    return _cuda_shaped(loss, logits, options), logits if in_place else grad


def _with_lse_gradient(grad: Any, logits: Any, lse: Any, grad_lse: Any, options: _Options) -> Any:
    """``grad`` (None: zero) plus the gradient through the returned lse: each scored row's
    softmax of the (softcapped) logits times its upstream gradient, through the softcap's
    ``1 - tanh²``; rows whose lse is NaN (nothing scored there) contribute nothing. Torch
    operations in float32 (float64 for float64 logits), rounded once to the logits' dtype."""
    torch = _torch.loaded_torch()
    compute = torch.float64 if logits.dtype == torch.float64 else torch.float32
    x = logits.detach().to(compute)
    softcap = options.kwargs["softcap"]
    if softcap is not None:
        squashed = torch.tanh(x / softcap)
        x = softcap * squashed
    weight = torch.where(torch.isnan(lse), 0.0, grad_lse.to(compute))
    total = torch.softmax(x, dim=-1).mul_(weight.unsqueeze(-1))
    if softcap is not None:
        total.mul_(1.0 - squashed * squashed)
    if grad is not None:
        total.add_(grad)
    return total.to(logits.dtype)


def _row_scale(grad_output: Any, dtype: Any, options: _Options) -> Any:
    """The upstream gradient of ``reduction="none"`` losses as one factor per logits row
    (shape ``(..., 1)``, in ``dtype``): each last position, which has no loss entry when
    shifting, gets 0."""
    rows = grad_output.to(dtype)
    if options.kwargs["shift"]:
        rows = _torch.loaded_torch().nn.functional.pad(rows, (0, 1))
    return rows.unsqueeze(-1)


@functools.cache
def _first_order_only() -> type:
    """A Function that passes the loss's gradient through under ``create_graph=True`` (and
    under torch.func transforms) and raises if anything differentiates through it: its
    second derivative is not computed, and without this the gradient would come out as a
    constant, so a gradient penalty's term would silently vanish."""
    torch = _torch.loaded_torch()

    class FirstOrderOnly(torch.autograd.Function):
        generate_vmap_rule = True  # forward is one torch operation

        @staticmethod
        def forward(grad: Any, logits: Any) -> Any:  # type: ignore[override]
            return grad.view_as(grad)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            pass

        @staticmethod
        def backward(ctx: Any, _upstream: Any) -> Any:  # type: ignore[override]
            raise ConfigError(_SECOND_ORDER)

        @staticmethod
        def jvp(ctx: Any, *_tangents: Any) -> Any:
            raise ConfigError(_SECOND_ORDER)

    return FirstOrderOnly


_SECOND_ORDER = (
    "causal_lm_loss: second derivatives (a backward through a gradient taken with "
    "create_graph=True, torch.func.grad of a grad, hessian) are not supported; use "
    "F.cross_entropy there"
)


@functools.cache
def _autograd_function() -> type:
    """The torch.autograd.Function, built on first use so importing this module needs no torch."""
    torch = _torch.loaded_torch()

    class CausalLMLossFunction(torch.autograd.Function):
        """Forward computes the gradient too; backward scales it by grad_output.

        The first backward hands the fused gradient over (so autograd can take it as the
        leaf's ``.grad`` without a copy). A re-entrant backward (``retain_graph``,
        gradcheck) recomputes it from the saved logits. The returned lse is differentiable
        too (softmax times its upstream gradient, computed in backward only when used).
        The gradient is not differentiable again: a double backward (``create_graph=True``,
        a gradient penalty) raises rather than silently leaving the second-order term out.
        """

        @staticmethod
        def forward(ctx: Any, logits: Any, labels: Any, options: _Options, return_lse: bool):  # type: ignore[override]
            loss, lse, grad = _torch_forward(logits, labels, options, return_lse, with_grad=True)
            ctx.save_for_backward(logits, *([lse] if lse is not None else []))
            ctx.grad, ctx.labels, ctx.options = grad, labels, options
            ctx.set_materialize_grads(False)  # an unused output's gradient stays None
            return loss, lse

        @staticmethod
        def backward(ctx: Any, grad_output: Any, grad_lse: Any = None):  # type: ignore[override]
            grad = None
            if grad_output is not None:
                grad = CausalLMLossFunction.first_order(ctx, grad_output)
            ctx.grad = None
            if grad_lse is not None:  # the caller backpropagates through the returned lse
                logits, lse = ctx.saved_tensors
                grad = _with_lse_gradient(grad, logits, lse, grad_lse, ctx.options)
            if grad is not None and torch.is_grad_enabled():  # create_graph=True
                grad = _first_order_only().apply(grad, ctx.saved_tensors[0])
            return grad, None, None, None

        @staticmethod
        def first_order(ctx: Any, grad_output: Any) -> Any:
            grad, ctx.grad = ctx.grad, None
            if grad is None:  # lse, when returned, is saved after the logits
                logits = ctx.saved_tensors[0]
                grad = _torch_forward(logits, ctx.labels, ctx.options, False, with_grad=True)[2]
            if ctx.options.reduction == "none":
                return grad.mul_(_row_scale(grad_output, grad.dtype, ctx.options))
            if grad.is_cuda:
                from ferrofix import _cuda

                return _cuda.scale_gradient(grad, grad_output)
            scale = grad_output.item()
            if scale != 1.0:
                grad.mul_(scale)
            return grad

    return CausalLMLossFunction


class CausalLoss:
    """``loss_fn(logits, labels)`` with the semantics LM training code expects.

    Shifts inside, ignores ``ignore_index`` (-100), averages over contributing tokens and
    returns exactly 0.0 when every token is ignored. Drop-in for a suite's own causal-LM
    loss class; options are those of :func:`causal_lm_loss`.
    """

    def __init__(
        self,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        z_loss_scale: float = 0.0,
        softcap: float | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        self._options = {
            "ignore_index": ignore_index,
            "reduction": reduction,
            "z_loss_scale": z_loss_scale,
            "softcap": softcap,
            "label_smoothing": label_smoothing,
        }
        # Fail at construction, with the native layer's messages, not at the first step.
        import numpy as np

        causal_lm_loss(np.zeros((1, 1), np.float32), np.zeros(1, np.int64), **self._options)

    @_torch.eager_under_compile
    def __call__(
        self,
        logits: Any,
        labels: Any = None,
        num_items_in_batch: Any = None,
        *,
        ignore_index: int | None = None,
        vocab_size: int | None = None,
        shift_labels: Any = None,
        **model_kwargs: Any,
    ) -> Any:
        """The loss of ``logits`` (B, T, V) or (N, V) against ``labels``, shifted inside;
        ``ignore_index`` overrides the instance's for this call.

        Also HF's loss-function convention, so ``model.loss_function = CausalLoss()`` swaps
        it into a transformers model (4.49 and later, where ``loss_function`` can be set):
        ``vocab_size`` (checked against the logits), ``shift_labels`` (labels already
        shifted, used as they are in place of ``labels``), and the other keyword arguments
        HF models pass through to their loss, which are ignored as HF's own loss ignores
        them. Without ``vocab_size`` (a direct call) an unknown keyword is an error, not
        ignored.
        """
        options = self._options
        if ignore_index is not None:
            options = options | {"ignore_index": ignore_index}
        if model_kwargs and vocab_size is None:
            raise ConfigError(
                f"{sorted(model_kwargs)[0]}: not an argument of {type(self).__name__}; it "
                "takes logits, labels, num_items_in_batch, ignore_index (and HF's vocab_size, "
                "shift_labels and model keywords)"
            )
        if vocab_size is not None:
            vocab_size = integer("vocab_size", vocab_size, low=1)
            shape = shape_of("logits", logits)
            if not shape or shape[-1] != vocab_size:
                raise ShapeError(
                    f"logits: expected shape (..., {vocab_size}) for vocab_size={vocab_size}, "
                    f"got {shape}"
                )
        if shift_labels is not None:
            targets, shift = shift_labels, False
        elif labels is not None:
            targets, shift = labels, True
        else:
            raise ConfigError("labels: give labels (or HF's shift_labels)")
        return causal_lm_loss(
            logits, targets, shift=shift, num_items_in_batch=num_items_in_batch, **options
        )

    def _repr_options(self) -> list[str]:
        defaults = {"ignore_index": -100, "reduction": "mean", "z_loss_scale": 0.0}
        defaults |= {"softcap": None, "label_smoothing": 0.0}
        return [f"{k}={v!r}" for k, v in self._options.items() if v != defaults[k]]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_options())})"


class ChunkedCausalLoss(CausalLoss):
    """:class:`CausalLoss` under the name suites give their memory-bounded chunked losses.

    ferrofix's kernel is chunked by construction: it streams each row's vocabulary through
    L1-sized chunks and never materialises log-probabilities, so its extra memory is
    O(tokens) whatever the chunk size. ``chunk_size`` (tokens per chunk in the losses this
    replaces) is validated and shown in the repr so a swapped-in instance reads the same.
    """

    def __init__(self, chunk_size: int = 4096, **options: Any) -> None:
        chunk_size = integer("chunk_size", chunk_size, low=1)
        super().__init__(**options)
        self.chunk_size = chunk_size

    def _repr_options(self) -> list[str]:
        return [f"chunk_size={self.chunk_size}", *super()._repr_options()]
