"""torch <-> numpy adaptation, without ever importing torch.

A value can only be a torch tensor if the caller already imported torch, so these helpers
look torch up in ``sys.modules`` and never pay its import cost.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def loaded_torch() -> Any | None:
    """The torch module if something already imported it, else None."""
    return sys.modules.get("torch")


def is_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor (False whenever torch is not imported)."""
    torch = loaded_torch()
    return torch is not None and isinstance(value, torch.Tensor)


_dtype_names: dict[Any, str] = {}


def dtype_name(tensor: Any) -> str:
    """The dtype's name as numpy spells it: ``torch.bfloat16`` -> ``"bfloat16"``."""
    dtype = tensor.dtype
    name = _dtype_names.get(dtype)
    if name is None:  # formatting the dtype is a sizeable part of a small call: once per dtype
        name = _dtype_names[dtype] = str(dtype).removeprefix("torch.")
    return name


def numpy_view(tensor: Any, name: str | None = None) -> np.ndarray:
    """A zero-copy numpy view of a CPU tensor's memory; 16-bit floats as their uint16 bits.

    numpy has no bfloat16, so bf16 (and, for one code path, f16) tensors are viewed as
    uint16 and the native layer reinterprets the bits. ``name``: the tensor's
    :func:`dtype_name`, when the caller already has it.
    """
    import numpy as np

    if tensor.requires_grad:
        tensor = tensor.detach()
    if (name or dtype_name(tensor)) in ("bfloat16", "float16"):
        torch = loaded_torch()
        return tensor.view(torch.int16).numpy().view(np.uint16)
    return tensor.numpy()
