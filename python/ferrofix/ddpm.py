"""Discrete DDPM beta schedules for image/audio diffusion suites.

Betas come from the published formulas (Ho et al. 2020 linear; the Stable Diffusion
``scaled_linear``; Nichol & Dhariwal 2021 ``squaredcos_cap_v2``; ``sigmoid``), computed in
float64 and stored as float32, like the diffusers schedulers suites compare against.
``alphas`` and ``alphas_cumprod`` are 1 - β and its cumulative product taken in float64 and
rounded once, so they are closer to the exact values than diffusers' float32 1 - β and
running product. Against diffusers they agree within rtol 2e-6 for T <= 4000, except where
``squaredcos_cap_v2`` caps β at ``max_beta``: there diffusers subtracts the float32 β
(0.999 is 0.99900001), and its 1 - β and every later product are 1.3e-5 below ours.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ferrofix import _torch
from ferrofix._args import choice, integer, number
from ferrofix._arrays import as_array
from ferrofix._memory import check_outputs_fit
from ferrofix.errors import ConfigError, DtypeError, ShapeError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DDPMSchedule"]

_BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
_SPACINGS = ("leading", "trailing", "linspace")


def _betas(kind: str, steps: int, start: float, end: float, max_beta: float) -> np.ndarray:
    import numpy as np

    if kind == "linear":
        return np.linspace(start, end, steps, dtype=np.float64)
    if kind == "scaled_linear":
        return np.linspace(math.sqrt(start), math.sqrt(end), steps, dtype=np.float64) ** 2
    if kind == "sigmoid":
        x = np.linspace(-6.0, 6.0, steps, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-x)) * (end - start) + start
    # squaredcos_cap_v2: ᾱ(s) = cos²(((s + 0.008) / 1.008)·π/2), β_i = 1 - ᾱ((i+1)/T)/ᾱ(i/T).
    s = np.arange(steps + 1, dtype=np.float64) / steps
    alpha_bar = np.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


class DDPMSchedule:
    """A discrete DDPM noise schedule with ``add_noise`` and inference timesteps.

    Args:
        num_timesteps: T, the number of training steps (>= 1).
        beta_schedule: ``"linear"``, ``"scaled_linear"``, ``"squaredcos_cap_v2"`` or
            ``"sigmoid"``.
        beta_start: First beta (linear, scaled_linear, sigmoid).
        beta_end: Last beta (linear, scaled_linear, sigmoid).
        max_beta: Cap of ``squaredcos_cap_v2`` betas, in (0, 1).

    Attributes:
        betas, alphas, alphas_cumprod: float32 numpy arrays of length T.
        timesteps: int64 inference timesteps, descending (all T steps until
            ``set_timesteps``).
    """

    def __init__(
        self,
        num_timesteps: int = 1000,
        beta_schedule: str = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        max_beta: float = 0.999,
    ) -> None:
        import numpy as np

        num_timesteps = integer("num_timesteps", num_timesteps, low=1)
        # betas, alphas, alphas_cumprod and timesteps, with their float64 working copies.
        check_outputs_fit("num_timesteps", (num_timesteps,), 8, "use fewer steps", arrays=6)
        beta_schedule = choice("beta_schedule", beta_schedule, _BETA_SCHEDULES)
        beta_start = number("beta_start", beta_start, "a number in (0, beta_end]")
        beta_end = number("beta_end", beta_end, "a number in [beta_start, 1)")
        max_beta = number("max_beta", max_beta, "a number in (0, 1)")
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ConfigError(
                "beta_start, beta_end: need 0 < beta_start <= beta_end < 1, "
                f"got {beta_start!r}, {beta_end!r}"
            )
        if not 0.0 < max_beta < 1.0:
            raise ConfigError(f"max_beta: must be in (0, 1), got {max_beta!r}")
        self.num_timesteps = num_timesteps
        self.beta_schedule = beta_schedule
        betas = _betas(beta_schedule, num_timesteps, beta_start, beta_end, max_beta)
        self.betas = betas.astype(np.float32)
        self.alphas = (1.0 - betas).astype(np.float32)
        self.alphas_cumprod = np.cumprod(1.0 - betas).astype(np.float32)
        self.timesteps = np.arange(num_timesteps - 1, -1, -1, dtype=np.int64)

    def __repr__(self) -> str:
        return (
            f"DDPMSchedule(num_timesteps={self.num_timesteps}, "
            f"beta_schedule={self.beta_schedule!r})"
        )

    def set_timesteps(self, num_inference_steps: int, spacing: str = "leading") -> np.ndarray:
        """Choose ``num_inference_steps`` descending timesteps for sampling.

        Spacings (Lin et al. 2023, Table 2): ``leading`` = arange(n)·(T // n), ``trailing``
        = round(arange(T, 0, -T/n)[:n]) - 1, ``linspace`` = round(linspace(0, T - 1, n)); all
        reversed to run from noisy to clean.

        Returns:
            The int64 timesteps, also stored as ``self.timesteps``.
        """
        import numpy as np

        n = integer("num_inference_steps", num_inference_steps, low=1, high=self.num_timesteps)
        spacing = choice("spacing", spacing, _SPACINGS)
        steps = self.num_timesteps
        if spacing == "leading":
            timesteps = (np.arange(n) * (steps // n)).round()[::-1]
        elif spacing == "trailing":
            # arange's length is rounded from floats and is n + 1 for some n (n = 29 of
            # T = 50 gave 30 steps, the last -1); its first n values are the ones meant.
            timesteps = np.round(np.arange(steps, 0, -steps / n)[:n]) - 1
        else:  # linspace
            timesteps = np.linspace(0, steps - 1, n).round()[::-1]
        self.timesteps = np.ascontiguousarray(timesteps, dtype=np.int64)
        return self.timesteps

    def add_noise(self, x0: Any, noise: Any, timesteps: Any) -> Any:
        """Forward process q(x_t | x_0): ``√ᾱ_t · x0 + √(1 - ᾱ_t) · noise``.

        The coefficients stay float32 even for float16/bfloat16 samples (diffusers rounds
        them to the sample's dtype first); the sum is rounded once to the sample's dtype.

        Args:
            x0: Clean samples ``(B, ...)``: numpy array or torch tensor (any device).
            noise: Same shape and type as ``x0``.
            timesteps: ``(B,)`` integer steps in [0, T).

        Returns:
            The noised samples, same type, dtype, shape and device as ``x0``.

        Raises:
            DtypeError: samples that are not floating-point arrays or tensors (integer
                samples would round the noise away).
        """
        import numpy as np

        for name, value in (("x0", x0), ("noise", noise)):
            if _torch.is_tensor(value):
                floating = value.is_floating_point()
            else:
                floating = isinstance(value, np.ndarray) and value.dtype.kind == "f"
            if not floating:
                got = getattr(value, "dtype", type(value).__name__)
                raise DtypeError(f"{name}: expected a floating-point array or tensor, got {got}")
        if _torch.is_tensor(x0) != _torch.is_tensor(noise):
            raise DtypeError("noise: must be the same kind as x0 (both numpy or both torch)")
        if tuple(x0.shape) != tuple(noise.shape):
            raise ShapeError(
                f"noise: expected shape {tuple(x0.shape)} (x0's), got {tuple(noise.shape)}"
            )
        steps = self._timesteps(timesteps, x0.shape)
        keep = np.sqrt(self.alphas_cumprod[steps])  # (B,) float32
        drop = np.sqrt(1.0 - self.alphas_cumprod[steps])  # (B,) float32
        broadcast = (len(steps),) + (1,) * (len(x0.shape) - 1)
        if _torch.is_tensor(x0):
            torch = _torch.loaded_torch()
            keep_t = torch.from_numpy(keep).to(x0.device).reshape(broadcast)
            drop_t = torch.from_numpy(drop).to(x0.device).reshape(broadcast)
            compute = torch.promote_types(x0.dtype, torch.float32)
            mixed = keep_t.to(compute) * x0.to(compute) + drop_t.to(compute) * noise.to(compute)
            return mixed.to(x0.dtype)
        x0, noise = np.asarray(x0), np.asarray(noise)
        compute = np.promote_types(x0.dtype, np.float32)
        mixed = keep.reshape(broadcast).astype(compute) * x0.astype(compute)
        mixed += drop.reshape(broadcast).astype(compute) * noise.astype(compute)
        return mixed.astype(x0.dtype, copy=False)

    def _timesteps(self, timesteps: Any, shape: tuple[int, ...]) -> np.ndarray:
        import numpy as np

        if _torch.is_tensor(timesteps):
            timesteps = _torch.host_array(timesteps, "timesteps")
        steps = as_array("timesteps", timesteps)
        if steps.dtype.kind not in "iu":
            raise DtypeError(f"timesteps: must be integers, got dtype {steps.dtype}")
        steps = steps.reshape(-1).astype(np.int64)
        if not shape or len(steps) != shape[0]:
            raise ShapeError(
                f"timesteps: expected shape ({shape[0] if shape else '?'},) "
                f"(one per sample), got {tuple(np.asarray(timesteps).shape)}"
            )
        bad = np.flatnonzero((steps < 0) | (steps >= self.num_timesteps))
        if bad.size:
            raise ConfigError(
                f"timesteps: must be in [0, {self.num_timesteps}), "
                f"got {steps[bad[0]]} at index {bad[0]}"
            )
        return steps
