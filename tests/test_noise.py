"""Continuous noise schedules: formulas against float64 references, inverses, input types,
sampling, the contract mixin on every schedule we ship, fixtures, and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ferrofix import _noise_torch, noise, seeding
from ferrofix.errors import ConfigError, DtypeError, ShapeError
from ferrofix.fixtures.noise import CONTINUOUS_KINDS
from ferrofix.mixins import NoiseScheduleContract
from ferrofix.noise import (
    CosineSchedule,
    CosineSquaredSchedule,
    DummyNoiseSchedule,
    GeometricSchedule,
    LinearSchedule,
    LogLinearSchedule,
    NoiseSchedule,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.reference import noise as reference
from tests.reference.memory import beyond_memory

# kind -> (constructor, reference parameters)
SCHEDULES = {
    "loglinear": (lambda: LogLinearSchedule(eps=1e-3), (1e-3,)),
    "linear": (lambda: LinearSchedule(0.5, 10.0), (0.5, 10.0)),
    "cosine": (lambda: CosineSchedule(eps=1e-3), (1e-3,)),
    "cosine_squared": (lambda: CosineSquaredSchedule(eps=0.01), (0.01,)),
    "geometric": (lambda: GeometricSchedule(1e-4, 20.0), (1e-4, 20.0)),
}
INVERTIBLE_RATE = ("loglinear", "cosine", "geometric")
QUANTITIES = (
    "total_noise",
    "noise_rate",
    "alpha",
    "mask_probability",
    "loss_weight",
    "t_from_total_noise",
    "t_from_noise_rate",
)


def grid() -> np.ndarray:
    """Both ends, a regular grid of odd size, and 997 seeded interior points."""
    rng = np.random.default_rng(7)
    return np.concatenate([[0.0, 1.0], np.linspace(0, 1, 1001), rng.random(997)])


@pytest.fixture(params=list(SCHEDULES), ids=list(SCHEDULES))
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def build(kind: str) -> tuple[NoiseSchedule, dict]:
    make, params = SCHEDULES[kind]
    return make(), reference.schedule(kind, *params)


# --- formulas -----------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", ["total_noise", "noise_rate"])
def test_float64_within_6_ulp_of_the_reference(kind: str, quantity: str) -> None:
    # The cosine family's reference is exact (mpmath); its σ = -log1p(-m) with
    # m = (1 - eps)·sin²(πt/2) carries m's few roundings, up to 5 ulp where m nears 1/2.
    schedule, ref = build(kind)
    t = grid()
    np.testing.assert_array_max_ulp(getattr(schedule, quantity)(t), ref[quantity](t), maxulp=6)


@pytest.mark.parametrize("quantity", ["total_noise", "noise_rate"])
def test_float32_is_the_reference_rounded_within_1_ulp(kind: str, quantity: str) -> None:
    schedule, ref = build(kind)
    t = grid().astype(np.float32)
    result = getattr(schedule, quantity)(t)
    assert result.dtype == np.float32
    expected = ref[quantity](t.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_max_ulp(result, expected, maxulp=1)


def test_alpha_mask_probability_and_loss_weight_follow_from_sigma(kind: str) -> None:
    schedule, ref = build(kind)
    t = grid()[2:]
    t = t[t > 0]
    sigma, rate = ref["total_noise"](t), ref["noise_rate"](t)
    np.testing.assert_allclose(schedule.alpha(t), np.exp(-sigma), rtol=1e-13)
    # The reference's σ = -log(α) carries α's absolute rounding (1e-16) into 1 - α, so
    # near t = 0 it is the less accurate side: compare with an absolute floor.
    np.testing.assert_allclose(
        schedule.mask_probability(t), -np.expm1(-sigma), rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(schedule.loss_weight(t), rate / np.expm1(sigma), rtol=1e-9)


def ends() -> np.ndarray:
    """t from 1e-12 up to 1/2 and from 1 - 1e-12 down to 1/2 (1 - t exact), 0 and 1."""
    near = np.logspace(-12, np.log10(0.5), 121)
    return np.concatenate([[0.0], near, 1.0 - near, [1.0]])


@pytest.mark.parametrize("kind", ["loglinear", "cosine", "cosine_squared"])
@pytest.mark.parametrize("quantity", ["total_noise", "noise_rate", "loss_weight"])
def test_schedules_keep_their_digits_at_both_ends(kind: str, quantity: str) -> None:
    """σ, σ' and the ELBO weight against mpmath where the plain formulas cancel: α rounds
    to 1 as t -> 0 (cosine's σ was 0 and its weight inf below t ≈ 1e-8), and near t = 1
    a rounding inside α ≈ eps is large relative to it (cos of the rounded πt/2 is 6e-17 at
    t = 1; log-linear's σ' was 488 ulp off). float32 inputs get the exact value rounded
    (within 1 ulp), and tensors that need autograd (the torch formulas) agree too."""
    schedule, ref = build(kind)
    t = ends()
    expected = ref[quantity](t)
    np.testing.assert_array_max_ulp(getattr(schedule, quantity)(t), expected, maxulp=6)
    t32 = t.astype(np.float32)
    exact32 = ref[quantity](t32.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_max_ulp(getattr(schedule, quantity)(t32), exact32, maxulp=1)
    tensor = torch.tensor(t, requires_grad=True)
    via_torch = getattr(schedule, quantity)(tensor).detach().numpy()
    np.testing.assert_array_max_ulp(via_torch, expected, maxulp=6)


def test_log_linear_loss_weight_is_exactly_one_over_t() -> None:
    t = grid()[3:]  # without t = 0
    assert np.array_equal(LogLinearSchedule().loss_weight(t), 1.0 / t)
    assert LogLinearSchedule().loss_weight(0.0) == math.inf


def test_mask_probability_is_exact_near_zero() -> None:
    """1 - α(t) is computed without cancellation: a·t for log-linear, no rounding to 0."""
    tiny = np.array([1e-12, 1e-9])
    np.testing.assert_allclose(LogLinearSchedule().mask_probability(tiny), 0.999 * tiny, rtol=1e-15)
    small = CosineSchedule(eps=1e-3).mask_probability(tiny)
    # 1 - cos(x) = x²/2 to far below float64 resolution here.
    np.testing.assert_allclose(small, 0.999 * (math.pi / 2 * tiny) ** 2 / 2, rtol=1e-12)


def test_sigma_at_zero_is_positive_zero_and_matches_sigma_min(kind: str) -> None:
    schedule, _ = build(kind)
    value = schedule.total_noise(0.0)
    assert value == schedule.sigma_min
    assert math.copysign(1.0, value) == 1.0


def test_loglinear_from_sigma_max_reaches_it() -> None:
    schedule = LogLinearSchedule(sigma_max=5.0)
    assert schedule.total_noise(1.0) == pytest.approx(5.0, rel=1e-14)
    assert schedule.eps == pytest.approx(math.exp(-5.0))


# --- inverses -----------------------------------------------------------------------------


def test_total_noise_inverse_matches_the_closed_form(kind: str) -> None:
    schedule, ref = build(kind)
    sigma = ref["total_noise"](np.linspace(0.0, 1.0, 101))
    np.testing.assert_allclose(
        schedule.t_from_total_noise(sigma),
        np.clip(ref["t_from_total_noise"](sigma), 0, 1),
        atol=2e-8,
    )


@pytest.mark.parametrize("kind_", INVERTIBLE_RATE)
def test_noise_rate_inverse_round_trips(kind_: str) -> None:
    schedule, _ = build(kind_)
    t = np.linspace(0.0, 1.0, 101)
    np.testing.assert_allclose(schedule.t_from_noise_rate(schedule.noise_rate(t)), t, atol=1e-9)


def test_log_linear_rate_inverse_is_the_published_formula() -> None:
    ref = reference.schedule("loglinear", 1e-3)
    x = np.linspace(0.999, 999.0, 57)
    np.testing.assert_allclose(
        LogLinearSchedule().t_from_noise_rate(x), ref["t_from_noise_rate"](x), rtol=1e-14
    )


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        (LinearSchedule(), "LinearSchedule has a constant noise rate"),
        (CosineSquaredSchedule(), "CosineSquaredSchedule's noise rate rises and then falls"),
    ],
    ids=["linear", "cosine_squared"],
)
def test_non_invertible_noise_rates_raise(schedule: NoiseSchedule, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"^noise_rate: {reason}"):
        schedule.t_from_noise_rate(1.0)
    with pytest.raises(ConfigError, match=f"^noise_rate: {reason}"):
        schedule.t_from_noise_rate(torch.ones(3, requires_grad=True))


def test_inverse_accepts_rounded_endpoints_and_clamps() -> None:
    schedule = CosineSchedule()
    sigma_max = np.float32(schedule.total_noise(np.float32(1.0)))
    assert schedule.t_from_total_noise(sigma_max) == np.float32(1.0)


# --- input and output types ---------------------------------------------------------------


def test_python_float_in_float_out() -> None:
    rate, total = LogLinearSchedule()(0.5)
    assert type(rate) is float
    assert type(total) is float
    assert (rate, total) == (
        LogLinearSchedule().noise_rate(0.5),
        LogLinearSchedule().total_noise(0.5),
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_dtype_and_shape_are_kept(dtype: type) -> None:
    t = np.linspace(0, 1, 12, dtype=dtype).reshape(3, 4)
    result = CosineSchedule().total_noise(t)
    assert result.dtype == dtype
    assert result.shape == (3, 4)
    expected = CosineSchedule().total_noise(t.astype(np.float64)).astype(dtype)
    np.testing.assert_array_max_ulp(result, expected, maxulp=1)
    scalar = CosineSchedule().total_noise(dtype(0.5))
    assert isinstance(scalar, dtype)
    zero_d = CosineSchedule().total_noise(np.array(0.5, dtype=dtype))
    assert (zero_d.shape, zero_d.dtype) == ((), dtype)
    np.testing.assert_array_equal(
        CosineSchedule().total_noise(np.asfortranarray(t)), result
    )  # column-major input: the same values in the same shape


def test_integer_and_non_contiguous_inputs() -> None:
    assert LinearSchedule(0, 2).total_noise(np.array([0, 1])).tolist() == [0.0, 2.0]
    t = np.linspace(0, 1, 20)[::3]
    np.testing.assert_array_equal(
        GeometricSchedule().total_noise(t), GeometricSchedule().total_noise(t.copy())
    )
    for swapped in (t.astype(">f8"), t.astype(">f4")):  # big-endian: the same values
        expected = GeometricSchedule().total_noise(swapped.astype(swapped.dtype.newbyteorder("=")))
        np.testing.assert_array_equal(GeometricSchedule().total_noise(swapped), expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_cpu_tensors_keep_type_and_dtype(dtype: torch.dtype) -> None:
    t = torch.linspace(0, 1, 33, dtype=dtype)
    rate, total = GeometricSchedule()(t)
    assert isinstance(rate, torch.Tensor)
    assert rate.dtype == dtype
    assert total.dtype == dtype
    expected = GeometricSchedule().total_noise(t.double().numpy())
    torch.testing.assert_close(total, torch.from_numpy(expected).to(dtype), rtol=0, atol=0)


def test_tensors_that_need_grad_use_the_torch_formulas_and_differentiate() -> None:
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64, requires_grad=True)
    schedule = CosineSchedule()
    total = schedule.total_noise(t)
    total.sum().backward()
    torch.testing.assert_close(t.grad, schedule.noise_rate(t.detach()), rtol=1e-10, atol=0)


@pytest.mark.parametrize("quantity", QUANTITIES)
def test_torch_formulas_match_native(kind: str, quantity: str) -> None:
    """The path CUDA tensors take, checked here on CPU tensors against the native code."""
    schedule, _ = build(kind)
    inputs = torch.linspace(0, 1, 257, dtype=torch.float64)
    if quantity == "t_from_total_noise":
        inputs = torch.from_numpy(schedule.total_noise(inputs.numpy()))
    elif quantity == "t_from_noise_rate":
        if kind not in INVERTIBLE_RATE:
            pytest.skip("not invertible")
        inputs = torch.from_numpy(schedule.noise_rate(inputs.numpy()))
    (via_torch,) = _noise_torch.evaluate(schedule, [quantity], inputs)
    native = getattr(schedule, quantity)(inputs.numpy())
    np.testing.assert_allclose(via_torch.numpy(), native, rtol=1e-13, atol=1e-15)


def test_torch_formulas_report_errors_like_native() -> None:
    t = torch.tensor([0.5, 2.0, -1.0])
    with pytest.raises(ConfigError) as native:
        LogLinearSchedule().total_noise(t.numpy())
    with pytest.raises(ConfigError) as via_torch:
        _noise_torch.evaluate(LogLinearSchedule(), ["total_noise"], t)
    assert str(native.value) == str(via_torch.value) == "t: must be in [0, 1], got 2 at index 1"


# --- sample_t -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 64, 1000])
def test_antithetic_sample_t_puts_one_time_in_each_stratum(n: int) -> None:
    eps = 1e-3
    t = LogLinearSchedule().sample_t(n, eps=eps, seed=11)
    assert t.dtype == np.float64
    assert t.shape == (n,)
    assert np.all((t >= eps) & (t <= 1.0))
    u = (t - eps) / (1 - eps)
    assert sorted(np.floor(u * n + 1e-9).astype(int).tolist()) == list(range(n))


def test_sample_t_is_the_ferrofix_uniform_transformed() -> None:
    from ferrofix import noise, rng

    u = rng.uniform(5, 3, stream=noise.SAMPLE_T_STREAM)
    expected_antithetic = (1 - 0.01) * ((u / 5 + np.arange(5) / 5) % 1.0) + 0.01
    np.testing.assert_array_equal(
        CosineSchedule().sample_t(5, eps=0.01, seed=3), expected_antithetic
    )
    np.testing.assert_array_equal(
        CosineSchedule().sample_t(5, eps=0.01, seed=3, antithetic=False), 0.99 * u + 0.01
    )


def test_sample_t_without_seed_continues_the_current_seeds_stream() -> None:
    schedule = LinearSchedule()
    seeding.reseed(99)
    first, second = schedule.sample_t(4), schedule.sample_t(4)
    assert not np.array_equal(first, second)
    seeding.reseed(99)
    again = LinearSchedule()
    np.testing.assert_array_equal(again.sample_t(4), first)
    # A refused call (too many times for any machine, a bad eps) does not move the stream.
    for refused in ({"batch_size": 2**40}, {"batch_size": 4, "eps": 2.0}):
        with pytest.raises(ConfigError):
            again.sample_t(**refused)
    np.testing.assert_array_equal(again.sample_t(4), second)


def test_sample_t_returns_torch_for_pt_schedules() -> None:
    t = LogLinearSchedule(return_tensors="pt").sample_t(8, seed=1, device="cpu")
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.get_default_dtype()
    t64 = LogLinearSchedule(return_tensors="pt").sample_t(8, seed=1, dtype=torch.float64)
    np.testing.assert_array_equal(t64.numpy(), LogLinearSchedule().sample_t(8, seed=1))


# --- properties ---------------------------------------------------------------------------


@given(
    kind_=st.sampled_from(list(SCHEDULES)),
    t1=st.floats(0, 1),
    t2=st.floats(0, 1),
)
def test_sigma_and_mask_probability_are_monotone(kind_: str, t1: float, t2: float) -> None:
    schedule, _ = build(kind_)
    lo, hi = min(t1, t2), max(t1, t2)
    assert schedule.total_noise(lo) <= schedule.total_noise(hi)
    p_lo, p_hi = schedule.mask_probability(lo), schedule.mask_probability(hi)
    assert 0.0 <= p_lo <= p_hi <= 1.0
    assert schedule.noise_rate(lo) >= 0.0


# --- the contract, on every schedule we ship ------------------------------------------------


class TestOurSchedulesMeetTheContract(NoiseScheduleContract):
    @pytest.fixture
    def schedule(self, noise_schedule: NoiseSchedule) -> NoiseSchedule:
        return noise_schedule


class TestNumpySchedulesMeetTheContract(NoiseScheduleContract):
    @pytest.fixture(params=list(SCHEDULES), ids=list(SCHEDULES))
    def schedule(self, request: pytest.FixtureRequest) -> NoiseSchedule:
        return SCHEDULES[request.param][0]()


BROKEN_SCHEDULE = """
import numpy as np
import pytest
from ferrofix.mixins import NoiseScheduleContract
from ferrofix.noise import LogLinearSchedule


class Decreasing(LogLinearSchedule):
    def total_noise(self, t):
        return 1.0 - np.asarray(t)


class TestBroken(NoiseScheduleContract):
    @pytest.fixture
    def schedule(self):
        return Decreasing()
"""


def test_the_contract_catches_a_broken_user_schedule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(BROKEN_SCHEDULE)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 3
    result.stdout.fnmatch_lines(["*schedule fixture: total_noise is not increasing*"])
    # The mixin itself is never collected: only TestBroken's tests ran.
    assert "NoiseScheduleContract::" not in result.stdout.str()


# --- dummy and fixtures -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s(0.5),
        lambda s: s.forward(0.5),
        lambda s: s.noise_rate(0.5),
        lambda s: s.total_noise(0.5),
        lambda s: s.t_from_noise_rate(0.5),
        lambda s: s.t_from_total_noise(0.5),
        lambda s: s.sample_t(4),
        lambda s: s.alpha(0.5),
        lambda s: s.mask_probability(0.5),
        lambda s: s.loss_weight(0.5),
    ],
)
def test_dummy_schedule_raises_everywhere(call) -> None:
    with pytest.raises(NotImplementedError, match=r"^This noise schedule does nothing\.$"):
        call(DummyNoiseSchedule())


def test_fixtures(
    dummy_noise_schedule, loglinear_schedule, noise_schedule, ddpm_schedule, request
) -> None:
    assert isinstance(dummy_noise_schedule, DummyNoiseSchedule)
    assert isinstance(loglinear_schedule, LogLinearSchedule)
    assert loglinear_schedule.eps == 1e-3
    # torch is installed here, so fixture schedules sample torch tensors.
    assert loglinear_schedule.return_tensors == "pt" == noise_schedule.return_tensors
    assert isinstance(noise_schedule.sample_t(3), torch.Tensor)
    assert request.node.callspec.id in {
        "loglinear",
        "linear",
        "cosine",
        "cosine_squared",
        "geometric",
    }
    assert ddpm_schedule.num_timesteps == 1000
    assert ddpm_schedule.beta_schedule == "linear"
    kind = request.node.callspec.id
    assert type(noise_schedule) is type(noise.fixture_schedule(kind))


def test_the_fixture_runs_through_every_continuous_schedule_noise_builds() -> None:
    # The fixture module names the kinds itself, so collecting it imports no numpy.
    assert tuple(noise._CONTINUOUS) == CONTINUOUS_KINDS
    with pytest.raises(ConfigError, match="kind: must be one of 'loglinear', 'linear', 'cosine'"):
        noise.fixture_schedule("karras")


# --- bad inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: LogLinearSchedule().total_noise(1.5),
            ConfigError,
            "t: must be in [0, 1], got 1.5 at index 0",
        ),
        (
            lambda: CosineSchedule().noise_rate(np.array([0.1, -0.2])),
            ConfigError,
            "t: must be in [0, 1], got -0.2 at index 1",
        ),
        (
            lambda: LinearSchedule().alpha(np.array([math.nan])),
            ConfigError,
            "t: must be in [0, 1], got NaN at index 0",
        ),
        (
            lambda: GeometricSchedule().loss_weight(torch.tensor([2.0])),
            ConfigError,
            "t: must be in [0, 1], got 2 at index 0",
        ),
        (
            lambda: LinearSchedule(0, 10).t_from_total_noise(11.0),
            ConfigError,
            "total_noise: must be in [0, 10] (sigma(0) to sigma(1) of LinearSchedule), "
            "got 11 at index 0",
        ),
        (
            lambda: LogLinearSchedule().t_from_noise_rate(0.5),
            ConfigError,
            "noise_rate: must be in [0.999, 998.9999999999991] "
            "(sigma'(0) to sigma'(1) of LogLinearSchedule), got 0.5 at index 0",
        ),
        (
            lambda: LogLinearSchedule().total_noise("0.5"),
            DtypeError,
            "noise schedules do not support dtype <U3; "
            "supported: float64, float32, float16, bfloat16 (or integers)",
        ),
        (
            lambda: LogLinearSchedule().total_noise(True),
            DtypeError,
            "noise schedules take float inputs, got True",
        ),
        (
            lambda: LogLinearSchedule()(torch.tensor([True])),
            DtypeError,
            "noise schedules do not support dtype torch.bool; "
            "supported: float64, float32, float16, bfloat16 (or integers)",
        ),
        (
            lambda: LogLinearSchedule().total_noise(np.array([True])),
            DtypeError,
            "noise schedules do not support dtype bool; "
            "supported: float64, float32, float16, bfloat16 (or integers)",
        ),
        (lambda: LogLinearSchedule(eps=0.0), ConfigError, "eps: must be in (0, 1), got 0"),
        (lambda: LogLinearSchedule(eps=1.0), ConfigError, "eps: must be in (0, 1), got 1"),
        (
            lambda: LogLinearSchedule(sigma_max=-1.0),
            ConfigError,
            "sigma_max: must be finite and > 0, got -1",
        ),
        (lambda: CosineSchedule(eps="x"), ConfigError, "eps: must be a number, got 'x'"),
        (
            lambda: LinearSchedule(-1.0, 1.0),
            ConfigError,
            "sigma_min: must be finite and >= 0, got -1",
        ),
        (
            lambda: LinearSchedule(2.0, 2.0),
            ConfigError,
            "sigma_max: must be finite and greater than sigma_min (2), got 2",
        ),
        (
            lambda: GeometricSchedule(0.0, 1.0),
            ConfigError,
            "sigma_min: must be finite and > 0, got 0",
        ),
        (
            lambda: GeometricSchedule(1.0, math.inf),
            ConfigError,
            "sigma_max: must be finite and greater than sigma_min (1), got inf",
        ),
        (
            lambda: LogLinearSchedule(return_tensors="tf"),
            ConfigError,
            "return_tensors: must be one of 'np', 'pt', got 'tf'",
        ),
        (
            lambda: LogLinearSchedule().sample_t(-1),
            ConfigError,
            "batch_size: must be an integer >= 0, got -1",
        ),
        (
            lambda: LogLinearSchedule().sample_t(4, eps=1.0),
            ConfigError,
            "eps: must be in [0, 1), got 1.0",
        ),
        (
            lambda: LogLinearSchedule().sample_t(4, seed=-1),
            ConfigError,
            "seed: must be in [0, 2**64), got -1",
        ),
        (
            lambda: LogLinearSchedule().sample_t(4, device="cpu"),
            ConfigError,
            "device: only applies with return_tensors='pt'",
        ),
        (
            lambda: LogLinearSchedule(return_tensors="np").sample_t(2, dtype=np.int64),
            DtypeError,
            "dtype: must be a numpy floating dtype (e.g. float32), got <class 'numpy.int64'>",
        ),
        (
            lambda: LogLinearSchedule(return_tensors="pt").sample_t(2, dtype=torch.int64),
            DtypeError,
            "dtype: must be a floating-point torch dtype, got torch.int64",
        ),
        (
            lambda: LogLinearSchedule().total_noise([[0.1, 0.2], [0.3]]),
            ShapeError,
            "t: expected an array; got nested sequences of different lengths",
        ),
        (
            lambda: LogLinearSchedule().sample_t(2**40, seed=0),
            ConfigError,
            "batch_size: 3 output arrays of shape [1099511627776] would need "
            f"{beyond_memory('24576.0 GiB')}; ask for fewer times",
        ),
    ],
)
def test_bad_inputs(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        call()
    assert str(raised.value) == message
