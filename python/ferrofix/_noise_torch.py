"""The schedule formulas in torch, for tensors the native code cannot take.

CUDA tensors, tensors that need autograd and those of torch.func transforms are evaluated
here, in float64 on their own device, with the same stable forms and the same operation
order as ``rust/ferrofix-core/src/noise_schedule.rs``; results are cast back to the input's
dtype.
Inputs are validated like the native path, which costs one host sync per call.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ferrofix import _torch
from ferrofix.errors import ConfigError

if TYPE_CHECKING:
    from ferrofix.noise import NoiseSchedule

_HALF_PI = math.pi / 2
_INVERSE_TOLERANCE = 1e-6  # as INVERSE_TOLERANCE in the core


def _number(value: float) -> str:
    """A float as the core's messages print it (``2`` not ``2.0``, ``NaN`` not ``nan``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


def _check(schedule: NoiseSchedule, quantity: str, x: Any) -> None:
    """Raise the core's ConfigError for the first input outside the quantity's domain."""
    if quantity == "t_from_total_noise":
        name, lo, hi = "total_noise", schedule.total_noise(0.0), schedule.total_noise(1.0)
        described = (
            f"[{_number(lo)}, {_number(hi)}] (sigma(0) to sigma(1) of {type(schedule).__name__})"
        )
    elif quantity == "t_from_noise_rate":
        # The native scalar path raises the core's error where σ' is not invertible.
        schedule.t_from_noise_rate(schedule.noise_rate(0.0))
        name, lo, hi = "noise_rate", schedule.noise_rate(0.0), schedule.noise_rate(1.0)
        described = (
            f"[{_number(lo)}, {_number(hi)}] (sigma'(0) to sigma'(1) of {type(schedule).__name__})"
        )
    else:
        name, lo, hi, described = "t", 0.0, 1.0, "[0, 1]"
    if name != "t":
        slack = _INVERSE_TOLERANCE * max(abs(lo), abs(hi), 1.0)
        lo, hi = lo - slack, hi + slack
    flat = x.detach().reshape(-1)
    bad = ~((flat >= lo) & (flat <= hi))  # also catches NaN
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        value = float(flat[index])
        raise ConfigError(f"{name}: must be in {described}, got {_number(value)} at index {index}")


def _neg_ln_alpha(alpha: Any, mask: Any) -> Any:
    """σ = -ln α from α and m = 1 - α: -ln1p(-m) while α is near 1 (where α has rounded
    m's digits away), -ln α beyond; ``+ 0.0`` turns σ(0) = -0.0 into +0.0."""
    torch = _torch.loaded_torch()
    return torch.where(mask < 0.5, -torch.log1p(-mask), -torch.log(alpha)) + 0.0


def _formulas(schedule: NoiseSchedule) -> dict[str, Any]:
    """The quantity -> float64 tensor function table of ``schedule``."""
    torch = _torch.loaded_torch()
    kind, (first, second) = schedule._kind, schedule._params

    def loss_weight(t: Any) -> Any:
        denominator = torch.expm1(table["total_noise"](t))
        weight = table["noise_rate"](t) / denominator
        return torch.where(denominator == 0, torch.full_like(weight, math.inf), weight)

    if kind in ("loglinear", "loglinear_sigma_max"):
        a = 1.0 - first if kind == "loglinear" else -math.expm1(-first)
        # α = 1 - a·t as (1 - t) + (1 - a)·t, which does not cancel near t = 1 (as the core).
        alpha = lambda t: (1.0 - t) + (1.0 - a) * t  # noqa: E731
        table = {
            "total_noise": lambda t: _neg_ln_alpha(alpha(t), a * t),
            "noise_rate": lambda t: a / alpha(t),
            "alpha": alpha,
            "mask_probability": lambda t: a * t,
            "loss_weight": lambda t: 1.0 / t,
            "t_from_total_noise": lambda x: -torch.expm1(-x) / a,
            "t_from_noise_rate": lambda x: 1.0 / a - 1.0 / x,
        }
        return table
    if kind in ("cosine", "cosine_squared"):
        eps = first
        squared = kind == "cosine_squared"

        def half_turn(t: Any) -> tuple[Any, Any, Any]:
            # (sin θ, cos θ, 1 - cos θ) of θ = πt/2 from a quarter angle q in [0, π/8], as
            # the core's HalfTurn: q = πt/4, or π(1 - t)/4 above t = 1/2 (sin and cos swap).
            upper = t > 0.5
            q = (math.pi / 4) * torch.where(upper, 1.0 - t, t)
            s, c = torch.sin(q), torch.cos(q)
            sin_2q, versine_2q = 2.0 * s * c, 2.0 * s * s
            cos_2q = 1.0 - versine_2q
            return (
                torch.where(upper, cos_2q, sin_2q),
                torch.where(upper, sin_2q, cos_2q),
                torch.where(upper, 1.0 - sin_2q, versine_2q),
            )

        def alpha(t: Any) -> Any:
            cos = half_turn(t)[1]
            return eps + (1.0 - eps) * (cos * cos if squared else cos)

        def rate(t: Any) -> Any:
            sin, cos, _ = half_turn(t)
            return _HALF_PI * (1.0 - eps) * (2.0 * sin * cos if squared else sin) / alpha(t)

        def mask(t: Any) -> Any:
            sin, _, one_minus_cos = half_turn(t)
            return (1.0 - eps) * (sin * sin if squared else one_minus_cos)

        def weight(t: Any) -> Any:
            # σ'·α/(1 - α) with eps cancelled: (π/2)·cot(πt/4), or π·cot(πt/2).
            if squared:
                sin, cos, _ = half_turn(t)
                return math.pi * cos / sin
            return _HALF_PI / torch.tan((math.pi / 4) * t)

        def from_total(x: Any) -> Any:
            m = -torch.expm1(-x) / (1.0 - eps)
            if kind == "cosine":
                return 2.0 * torch.asin(torch.sqrt(0.5 * m)) / _HALF_PI
            kept = (torch.exp(-x) - eps) / (1.0 - eps)
            return torch.atan2(m.clamp(min=0).sqrt(), kept.clamp(min=0).sqrt()) / _HALF_PI

        def from_rate(x: Any) -> Any:
            k = _HALF_PI * (1.0 - eps)
            c = x * (1.0 - eps)
            theta = torch.atan2(c, torch.full_like(c, k)) + torch.asin(
                x * eps / torch.hypot(torch.full_like(c, k), c)
            )
            return theta / _HALF_PI

        table = {
            "total_noise": lambda t: _neg_ln_alpha(alpha(t), mask(t)),
            "noise_rate": rate,
            "alpha": alpha,
            "mask_probability": mask,
            "loss_weight": weight,
            "t_from_total_noise": from_total,
            "t_from_noise_rate": from_rate,
        }
        return table
    sigma_min, sigma_max = first, second
    if kind == "linear":
        total = lambda t: sigma_min + t * (sigma_max - sigma_min)  # noqa: E731
        rate = lambda t: torch.full_like(t, sigma_max - sigma_min)  # noqa: E731
        from_total = lambda x: (x - sigma_min) / (sigma_max - sigma_min)  # noqa: E731
        from_rate = None
    else:  # geometric
        log_ratio = math.log(sigma_max) - math.log(sigma_min)
        total = lambda t: sigma_min ** (1.0 - t) * sigma_max**t  # noqa: E731
        rate = lambda t: total(t) * log_ratio  # noqa: E731
        from_total = lambda x: (torch.log(x) - math.log(sigma_min)) / log_ratio  # noqa: E731
        from_rate = lambda x: from_total(x / log_ratio)  # noqa: E731
    table = {
        "total_noise": total,
        "noise_rate": rate,
        "alpha": lambda t: torch.exp(-total(t)),
        "mask_probability": lambda t: -torch.expm1(-total(t)),
        "loss_weight": loss_weight,
        "t_from_total_noise": from_total,
        "t_from_noise_rate": from_rate,
    }
    return table


def evaluate(schedule: NoiseSchedule, quantities: list[str], x: Any) -> list[Any]:
    """``quantities`` of ``schedule`` at the float tensor ``x``, in ``x``'s dtype."""
    # A transform's tensor (vmap's batch) is checked through the values beneath it: a
    # data-dependent check on the batched tensor itself is not allowed under vmap.
    _check(schedule, quantities[0], _torch.transform_base(x))
    table = _formulas(schedule)
    x64 = x.to(dtype=_torch.loaded_torch().float64)
    results = []
    for quantity in quantities:
        value = table[quantity](x64)
        if quantity.startswith("t_from_"):
            value = value.clamp(0.0, 1.0)
        results.append(value.to(x.dtype))
    return results
