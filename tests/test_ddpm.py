"""DDPM schedules: published test vectors, formulas, inference timesteps, add_noise."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from ferrofix.ddpm import DDPMSchedule
from ferrofix.errors import ConfigError, DtypeError, ShapeError
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference.memory import beyond_memory

# diffusers' float32 cumulative products at T = 1000 (the issue's test vectors).
VECTORS = [
    ({"beta_schedule": "linear"}, "alphas_cumprod", 999, 4.03583035e-05),
    (
        {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
        "alphas_cumprod",
        999,
        4.66009509e-03,
    ),
    ({"beta_schedule": "squaredcos_cap_v2"}, "betas", 0, 4.128422e-05),
    ({"beta_schedule": "squaredcos_cap_v2"}, "betas", 999, 0.999),
    ({"beta_schedule": "squaredcos_cap_v2"}, "alphas_cumprod", 499, 4.93843466e-01),
    ({"beta_schedule": "sigmoid"}, "alphas_cumprod", 999, 3.96818214e-05),
]


@pytest.mark.parametrize(("kwargs", "name", "index", "value"), VECTORS)
def test_published_vectors(kwargs: dict, name: str, index: int, value: float) -> None:
    schedule = DDPMSchedule(num_timesteps=1000, **kwargs)
    array = getattr(schedule, name)
    assert array.dtype == np.float32
    assert array.shape == (1000,)
    assert array[index] == pytest.approx(value, rel=1e-5)


def test_cumulative_product_is_float64_then_rounded() -> None:
    schedule = DDPMSchedule(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000) ** 2
    running = 1.0
    expected = []
    for beta in betas:
        running *= 1.0 - beta
        expected.append(running)
    np.testing.assert_array_equal(schedule.alphas_cumprod, np.float32(expected))
    np.testing.assert_array_equal(schedule.betas, betas.astype(np.float32))


def test_squaredcos_betas_follow_the_alpha_bar_formula() -> None:
    steps = 10
    schedule = DDPMSchedule(num_timesteps=steps, beta_schedule="squaredcos_cap_v2")

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    expected = [
        min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)
    ]
    np.testing.assert_allclose(schedule.betas, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        ("leading", [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
        ("trailing", [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
        ("linspace", [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]),
    ],
)
def test_set_timesteps_spacings(spacing: str, expected: list[int]) -> None:
    schedule = DDPMSchedule()
    timesteps = schedule.set_timesteps(10, spacing=spacing)
    assert timesteps.dtype == np.int64
    assert timesteps.tolist() == expected
    assert schedule.timesteps.tolist() == expected


def _exact_trailing(steps: int, n: int) -> list[int]:
    """Lin et al.'s trailing timesteps in exact arithmetic: round(T - i·T/n) - 1, i < n
    (ties are impossible to hit differently: only the float path could round them)."""
    return [round(Fraction(steps) - Fraction(i * steps, n)) - 1 for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), steps=st.integers(1, 2000))
def test_every_spacing_gives_n_distinct_steps_in_range(data, steps: int) -> None:
    n = data.draw(st.integers(1, steps), label="n")
    schedule = DDPMSchedule(num_timesteps=steps)
    for spacing in ("leading", "trailing", "linspace"):
        timesteps = schedule.set_timesteps(n, spacing=spacing)
        assert len(timesteps) == n, spacing
        assert timesteps.min() >= 0, spacing
        assert timesteps.max() < steps, spacing
        assert (np.diff(timesteps) < 0).all(), spacing
    trailing = schedule.set_timesteps(n, spacing="trailing")
    assert trailing[0] == steps - 1
    # Equal to exact arithmetic except where the float product lands on the other side of
    # a .5 tie: within one step everywhere.
    assert np.abs(trailing - _exact_trailing(steps, n)).max() <= 1


def test_trailing_spacing_never_adds_a_step() -> None:
    # np.arange(50, 0, -50 / 29) has 30 elements; the last became timestep -1.
    timesteps = DDPMSchedule(num_timesteps=50).set_timesteps(29, spacing="trailing")
    assert len(timesteps) == 29
    assert timesteps.tolist() == _exact_trailing(50, 29)


def test_add_noise_numpy_and_torch() -> None:
    schedule = DDPMSchedule()
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((3, 2, 4)).astype(np.float32)
    noise = rng.standard_normal((3, 2, 4)).astype(np.float32)
    steps = np.array([0, 500, 999])
    abar = schedule.alphas_cumprod[steps].astype(np.float32)
    expected = (
        np.sqrt(abar)[:, None, None] * x0 + np.sqrt(np.float32(1) - abar)[:, None, None] * noise
    )
    result = schedule.add_noise(x0, noise, steps)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    via_torch = schedule.add_noise(
        torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(steps)
    )
    np.testing.assert_allclose(via_torch.numpy(), expected, rtol=1e-6)


def test_add_noise_keeps_float32_coefficients_for_bfloat16_samples() -> None:
    schedule = DDPMSchedule()
    x0 = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)).bfloat16()
    noise = torch.randn(4, 8, generator=torch.Generator().manual_seed(1)).bfloat16()
    steps = torch.tensor([1, 10, 100, 900])
    result = schedule.add_noise(x0, noise, steps)
    assert result.dtype == torch.bfloat16
    abar = torch.from_numpy(schedule.alphas_cumprod[steps.numpy()])[:, None]
    exact = abar.sqrt() * x0.float() + (1 - abar).sqrt() * noise.float()
    assert torch.equal(result, exact.bfloat16())


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: DDPMSchedule(num_timesteps=0),
            ConfigError,
            "num_timesteps: must be an integer >= 1, got 0",
        ),
        (
            lambda: DDPMSchedule(num_timesteps=2**40),
            ConfigError,
            "num_timesteps: 6 output arrays of shape [1099511627776] would need "
            f"{beyond_memory('49152.0 GiB')}; use fewer steps",
        ),
        (
            lambda: DDPMSchedule(beta_schedule="cubic"),
            ConfigError,
            "beta_schedule: must be one of 'linear', 'scaled_linear', 'squaredcos_cap_v2', "
            "'sigmoid', got 'cubic'",
        ),
        (
            lambda: DDPMSchedule(beta_start=0.1, beta_end=0.01),
            ConfigError,
            "beta_start, beta_end: need 0 < beta_start <= beta_end < 1, got 0.1, 0.01",
        ),
        (lambda: DDPMSchedule(max_beta=1.0), ConfigError, "max_beta: must be in (0, 1), got 1.0"),
        (
            lambda: DDPMSchedule().set_timesteps(1001),
            ConfigError,
            "num_inference_steps: must be an integer in [1, 1000], got 1001",
        ),
        (
            lambda: DDPMSchedule().set_timesteps(10, spacing="karras"),
            ConfigError,
            "spacing: must be one of 'leading', 'trailing', 'linspace', got 'karras'",
        ),
        (
            lambda: DDPMSchedule().add_noise(np.zeros((2, 3)), np.zeros((2, 3)), [3, True]),
            DtypeError,
            "timesteps[1]: must be an integer, got a bool",
        ),
        (
            lambda: DDPMSchedule().add_noise(
                np.zeros((2, 3)), np.zeros((2, 3)), np.array([0, 1000])
            ),
            ConfigError,
            "timesteps: must be in [0, 1000), got 1000 at index 1",
        ),
        (
            lambda: DDPMSchedule().add_noise(
                np.zeros((2, 3)), np.zeros((2, 3)), np.array([0.5, 1.0])
            ),
            DtypeError,
            "timesteps: must be integers, got dtype float64",
        ),
        (
            lambda: DDPMSchedule().add_noise(
                np.zeros((2, 3)), np.zeros((2, 3)), np.array([True, False])
            ),
            DtypeError,
            "timesteps: must be integers, got dtype bool",
        ),
        (
            lambda: DDPMSchedule().add_noise(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0])),
            ShapeError,
            "timesteps: expected shape (2,) (one per sample), got (1,)",
        ),
        (
            lambda: DDPMSchedule().add_noise(np.zeros((2, 3), np.int64), np.zeros((2, 3)), [0, 1]),
            DtypeError,
            "x0: expected a floating-point array or tensor, got int64",
        ),
        (
            lambda: DDPMSchedule().add_noise(np.zeros((2, 3)), [[0.0] * 3] * 2, [0, 1]),
            DtypeError,
            "noise: expected a floating-point array or tensor, got list",
        ),
        (
            lambda: DDPMSchedule().add_noise(np.zeros((2, 3)), torch.zeros(2, 3), [0, 1]),
            DtypeError,
            "noise: must be the same kind as x0 (both numpy or both torch)",
        ),
        (
            lambda: DDPMSchedule().add_noise(np.zeros((2, 3)), np.zeros((2, 4)), np.array([0, 1])),
            ShapeError,
            "noise: expected shape (2, 3) (x0's), got (2, 4)",
        ),
    ],
)
def test_bad_inputs(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        call()
    assert str(raised.value) == message
