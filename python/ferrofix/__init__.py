"""pytest-ferrofix: fast, deterministic fixtures and native checks for ML test suites.

Importing ``ferrofix`` is cheap: it loads neither numpy, torch nor the native extension.
Public names resolve lazily on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it; resolved on first attribute access.
_LAZY = {
    "errors": "ferrofix.errors",
    "rng": "ferrofix.rng",
    "parallel": "ferrofix.parallel",
    "loss": "ferrofix.loss",
    "causal_lm_loss": "ferrofix.loss",
    "causal_lm_loss_and_grad": "ferrofix.loss",
    "CausalLoss": "ferrofix.loss",
    "ChunkedCausalLoss": "ferrofix.loss",
    "cuda_available": "ferrofix._cuda",
    "noise": "ferrofix.noise",
    "ddpm": "ferrofix.ddpm",
    "mixins": "ferrofix.mixins",
    "NoiseSchedule": "ferrofix.noise",
    "LogLinearSchedule": "ferrofix.noise",
    "LinearSchedule": "ferrofix.noise",
    "CosineSchedule": "ferrofix.noise",
    "CosineSquaredSchedule": "ferrofix.noise",
    "GeometricSchedule": "ferrofix.noise",
    "DummyNoiseSchedule": "ferrofix.noise",
    "DDPMSchedule": "ferrofix.ddpm",
    "mask_tokens": "ferrofix.noise",
    "uniform_corrupt": "ferrofix.noise",
    "NoiseScheduleContract": "ferrofix.mixins",
    "packing": "ferrofix.packing",
    "pack": "ferrofix.packing",
    "pack_sequences": "ferrofix.packing",
    "check_packing": "ferrofix.packing",
    "assert_valid_packing": "ferrofix.packing",
    "Packing": "ferrofix.packing",
    "PackingReport": "ferrofix.packing",
    "tokenizers": "ferrofix.tokenizers",
    "Tokenizer": "ferrofix.tokenizers",
    "SimpleTokenizer": "ferrofix.tokenizers",
    "CharTokenizer": "ferrofix.tokenizers",
    "ByteTokenizer": "ferrofix.tokenizers",
    "BPETokenizer": "ferrofix.tokenizers",
    "load_tokenizer": "ferrofix.tokenizers",
    "TokenizerContract": "ferrofix.mixins",
    "BaseModelTests": "ferrofix.mixins",
    "BaseLossTests": "ferrofix.mixins",
    "BaseCollatorTests": "ferrofix.mixins",
    "BrokenModel": "ferrofix.fixtures.models",
    "NaNModel": "ferrofix.fixtures.models",
    "assertions": "ferrofix.assertions",
    "compare_tensors": "ferrofix.assertions",
    "assert_close": "ferrofix.assertions",
    "assert_finite": "ferrofix.assertions",
    "assert_gradients_flow": "ferrofix.assertions",
    "assert_batch_independence": "ferrofix.assertions",
    "assert_causal": "ferrofix.assertions",
    "assert_can_overfit": "ferrofix.assertions",
    "assert_deterministic": "ferrofix.assertions",
    "groups": "ferrofix.groups",
    "register_model": "ferrofix.groups",
    "ModelConfig": "ferrofix.groups",
    "FerrofixError": "ferrofix.errors",
    "ShapeError": "ferrofix.errors",
    "ConfigError": "ferrofix.errors",
    "DtypeError": "ferrofix.errors",
    "UnknownTokenError": "ferrofix.errors",
    "CudaUnavailableError": "ferrofix.errors",
    "CudaError": "ferrofix.errors",
    "num_threads": "ferrofix.parallel",
    "set_num_threads": "ferrofix.parallel",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'ferrofix' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.rsplit(".", 1)[-1] == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
