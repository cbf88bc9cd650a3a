"""torch <-> numpy adaptation, without ever importing torch.

A value can only be a torch tensor if the caller already imported torch, so these helpers
look torch up in ``sys.modules`` and never pay its import cost.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any, TypeVar

from ferrofix.errors import ConfigError, DtypeError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

F = TypeVar("F", bound="Callable[..., Any]")


def loaded_torch() -> Any | None:
    """The torch module if something already imported it, else None."""
    return sys.modules.get("torch")


def is_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor (False whenever torch is not imported)."""
    torch = loaded_torch()
    return torch is not None and isinstance(value, torch.Tensor)


_is_compiling: Any = None


def _compiling() -> bool:
    """Whether torch.compile is tracing the caller; asked only once torch._dynamo (which
    tracing needs) is loaded. ``torch._dynamo.is_compiling`` says, from torch 2.2 (newer
    versions forward it to ``torch.compiler.is_compiling``, which 2.2 lacks). It is looked
    up once, as this runs on every call of a wrapped entry point; that first lookup may be
    traced itself, so it must be one that dynamo traces without a graph break (torch 2.2's
    breaks on ``hasattr`` of a missing module attribute, and then traces ferrofix's code)."""
    global _is_compiling
    if _is_compiling is None:
        _is_compiling = sys.modules["torch._dynamo"].is_compiling
    return bool(_is_compiling())


def eager_under_compile(fn: F) -> F:
    """``fn``, a public entry point that may take torch tensors into native code, run as
    it is, except while torch.compile traces the caller, where it runs through
    ``torch.compiler.disable`` (a graph break that runs it eagerly). Traced, it would reach
    the extension's functions, which dynamo cannot trace, and dynamo warns about those and
    about its own checks on the tensors (errors under ``-W error``)."""
    disabled: Any = None
    modules = sys.modules

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal disabled
        # Without torch._dynamo loaded nothing is tracing: one dict lookup for most calls.
        if "torch._dynamo" not in modules or not _compiling():
            return fn(*args, **kwargs)
        if disabled is None:
            disable = modules["torch"].compiler.disable
            try:
                disabled = disable(fn, reason="ferrofix runs native code eagerly")
            except TypeError:  # older torch takes no reason
                disabled = disable(fn)
        return disabled(*args, **kwargs)

    return call  # type: ignore[return-value]


_is_wrapped: Any = None


def in_transform(value: Any, other: Any = None) -> bool:
    """Whether ``value`` or ``other`` is a torch.func transform's wrapper tensor (vmap's
    batched tensor, grad's or jvp's tracking tensor), which holds no memory native code can
    read. Asked on every tensor call, so torch's test is looked up once."""
    global _is_wrapped
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if _is_wrapped is None:
        functorch = getattr(torch._C, "_functorch", None)
        _is_wrapped = getattr(functorch, "is_functorch_wrapped_tensor", None) or (lambda _: False)
    tensor = torch.Tensor
    return (isinstance(value, tensor) and _is_wrapped(value)) or (
        isinstance(other, tensor) and _is_wrapped(other)
    )


def transform_base(tensor: Any, refuse_batched: str | None = None) -> Any:
    """The plain tensor under a transform's wrappers (``tensor`` itself when it has none):
    every value the transform sees, all of a vmap's samples, for checks on the values. With
    ``refuse_batched`` (an argument's name), a vmap's batched tensor is a ConfigError
    instead: it has no per-sample memory for native code to read."""
    functorch = loaded_torch()._C._functorch
    while functorch.is_functorch_wrapped_tensor(tensor):
        if refuse_batched is not None and functorch.is_batchedtensor(tensor):
            raise ConfigError(
                f"{refuse_batched}: a tensor batched by torch.func.vmap has no per-sample "
                "memory ferrofix's native code can read; call this on the whole batch, "
                "outside vmap"
            )
        tensor = functorch.get_unwrapped(tensor)
    return tensor


_dtype_names: dict[Any, str] = {}


def dtype_name(tensor: Any) -> str:
    """The dtype's name as numpy spells it: ``torch.bfloat16`` -> ``"bfloat16"``."""
    dtype = tensor.dtype
    name = _dtype_names.get(dtype)
    if name is None:  # formatting the dtype is a sizeable part of a small call: once per dtype
        name = _dtype_names[dtype] = str(dtype).removeprefix("torch.")
    return name


def numpy_view(tensor: Any, arg: str, name: str | None = None) -> np.ndarray:
    """A zero-copy numpy view of a CPU tensor's memory (made contiguous first; a device
    tensor is copied to the host); 16-bit floats as their uint16 bits.

    numpy has no bfloat16, so bf16 (and, for one code path, f16) tensors are viewed as
    uint16 and the native layer reinterprets the bits. ``arg``: the argument's name for
    errors; ``name``: the tensor's :func:`dtype_name`, when the caller already has it. A
    tensor with a pending sign (see :func:`host_array`) is resolved into a copy: callers
    that write into the view must refuse such tensors first (:func:`check_in_place`).
    """

    def view(tensor: Any) -> np.ndarray:
        import numpy as np

        tensor = _on_host(tensor).contiguous()
        if (name or dtype_name(tensor)) in ("bfloat16", "float16"):
            return tensor.view(loaded_torch().int16).numpy().view(np.uint16)
        return tensor.numpy()

    return _converted(view, tensor, arg)


def host_array(tensor: Any, arg: str) -> np.ndarray:
    """A tensor's values as a numpy array: detached, copied to the host from a device, and
    otherwise sharing a CPU tensor's memory. ``arg``: the argument's name for errors.

    torch negates some views (``x.conj().imag``, ``torch._neg_view(x)``) and conjugates
    complex ones lazily, as a bit on the tensor over memory that still holds the other sign;
    ``.numpy()`` refuses those, so they are resolved into a copy first. Tensors no array can
    hold (sparse, on the meta device, float8) are ferrofix errors naming ``arg``. Inside a
    torch.func transform, see :func:`_converted`. These checks run only when torch
    refuses, so plain tensors pay nothing for them.
    """
    return _converted(lambda tensor: _on_host(tensor).numpy(), tensor, arg)


def _on_host(tensor: Any) -> Any:
    if tensor.requires_grad:
        tensor = tensor.detach()
    return tensor.cpu() if tensor.device.type != "cpu" else tensor


# What torch raises when it cannot hand a tensor's memory to numpy.
_REFUSALS = (RuntimeError, TypeError, NotImplementedError)


def _converted(
    convert: Callable[[Any], np.ndarray], tensor: Any, arg: str, *, beneath: bool = False
) -> np.ndarray:
    """``convert(tensor)``; where torch refuses, the tensor is made readable and converted
    again, or the refusal becomes a ferrofix error naming ``arg``."""
    try:
        return convert(tensor)
    except _REFUSALS as error:
        if not beneath and _transform_active():
            # Inside a transform every operation goes through it, so even a tensor captured
            # from outside has no memory .numpy() can reach; with the transform's dispatch
            # off it converts as usual. grad's wrappers are peeled (native code is not
            # differentiated: the values are read as .detach() reads them).
            with loaded_torch()._C._DisableFuncTorch():
                plain = transform_base(tensor, refuse_batched=arg)
                return _converted(convert, plain, arg, beneath=True)
        return _converted(convert, _readable(tensor, arg, error), arg, beneath=beneath)


def _transform_active() -> bool:
    functorch = getattr(loaded_torch()._C, "_functorch", None)
    peek = getattr(functorch, "peek_interpreter_stack", None)  # None: no transform running
    return peek is not None and peek() is not None


def _readable(tensor: Any, arg: str, error: Exception) -> Any:
    """``tensor`` with its pending negation or conjugation applied, after torch refused to
    convert it with ``error``; or the ferrofix error saying why no array can hold it."""
    check_has_values(tensor, arg)
    if has_pending_sign(tensor):
        return tensor.resolve_neg().resolve_conj()
    if "unsupported ScalarType" in str(error):
        raise DtypeError(
            f"{arg}: numpy has no {dtype_name(tensor)}, so ferrofix cannot read it; convert "
            "it to a dtype numpy has first (.float(), .long())"
        ) from None
    raise error


def check_has_values(tensor: Any, arg: str) -> None:
    """Refuse tensors whose values ferrofix cannot read or index: sparse layouts and the
    meta device (shapes only)."""
    layout = tensor.layout
    if layout != loaded_torch().strided:
        raise DtypeError(
            f"{arg}: expected a dense (strided) tensor, got layout {layout}; pass {arg}.to_dense()"
        )
    if tensor.device.type == "meta":
        raise ConfigError(f"{arg}: a tensor on the meta device holds no values to read")


def has_pending_sign(tensor: Any) -> bool:
    """Whether torch has yet to apply a negation or conjugation to ``tensor``'s memory, so
    that writing into that memory would not give the values written (see :func:`host_array`)."""
    return bool(tensor.is_neg() or tensor.is_conj())


def check_in_place(tensor: Any) -> None:
    """Refuse logits the loss cannot overwrite with their gradient: memory that is not
    contiguous or that holds the other sign of the values (a pending negation), and a leaf
    that requires grad, which torch's own in-place operations refuse too."""
    if tensor.requires_grad and tensor.is_leaf:
        raise ConfigError(
            "logits: a leaf tensor that requires grad cannot be overwritten in place (torch "
            "refuses in-place operations on one too); use in_place=False, or pass "
            "logits.detach() if its values are no longer needed"
        )
    if not tensor.is_contiguous():
        raise ConfigError("logits: must be contiguous for an in-place gradient")
    if has_pending_sign(tensor):
        raise ConfigError(
            "logits: torch has yet to apply a negation to this tensor's memory (its neg bit, "
            "as on x.conj().imag), so an in-place gradient would read back negated; pass "
            "logits.resolve_neg() or use in_place=False"
        )


def mark_overwritten(tensor: Any) -> None:
    """Tell autograd that ``tensor``'s memory was rewritten behind its back, as torch's own
    in-place operations do: a backward through an operation that saved the old values
    (``tanh`` saves its output) then raises instead of silently using the new ones."""
    loaded_torch().autograd.graph.increment_version(tensor)
