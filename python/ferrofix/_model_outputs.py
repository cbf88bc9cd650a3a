"""What a model returned, as the tensor to test: the value itself, or the ``logits`` of a
Hugging Face-style output (``CausalLMOutput`` and friends are mappings that also expose
their fields as attributes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferrofix import _torch


def _is_array(value: Any) -> bool:
    import numpy as np

    return _torch.is_tensor(value) or isinstance(value, np.ndarray)


def logits_of(output: Any) -> Any | None:
    """``output`` when it is a tensor or array, else its ``logits`` when it carries them
    as a tensor or array, else None (tuples are not guessed at: their first element is
    the loss in some models and the logits in others)."""
    if _is_array(output):
        return output
    if isinstance(output, Mapping):
        logits = output.get("logits")
    elif isinstance(output, list | tuple):
        logits = None
    else:
        logits = getattr(output, "logits", None)
    return logits if _is_array(logits) else None
