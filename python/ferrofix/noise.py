"""Diffusion noise schedules and masking forward processes; their fixtures live in
``ferrofix.fixtures.noise``.

Continuous-time schedules follow the MDLM/SEDD conventions: total noise ``σ(t)`` on
``t ∈ [0, 1]``, its rate ``σ'(t)``, keep probability ``α(t) = exp(-σ(t))``, mask probability
``1 - α(t)`` and ELBO weight ``σ'(t) / expm1(σ(t))``. Every schedule answers the protocol
suites call (``noise_rate``, ``total_noise``, ``t_from_noise_rate``, ``t_from_total_noise``,
``forward``/``__call__`` returning ``(noise_rate, total_noise)``, ``sample_t``) plus
``alpha``, ``mask_probability`` and ``loss_weight``.

Values are computed natively in float64 and rounded once to the input's float type (for
float32/float16 inputs, σ and σ' use vectorised float64 polynomials within 1e-15 relative of
the libm formulas, so the result is within one unit in the last place of it). Inputs
may be Python floats (a float comes back), numpy arrays or scalars (same dtype and shape;
integer inputs give float64) and torch tensors (same dtype and device). CPU tensors go
through the native code; CUDA tensors and tensors that need autograd use the same float64
formulas written in torch (see ``ferrofix._noise_torch``), validated with one host sync.

``mask_tokens`` and ``uniform_corrupt`` are the forward processes of masked and uniform
(SEDD) diffusion LMs. Their randomness is counter-based: whether token ``(row, position)``
is replaced depends only on ``(seed, row, position)``, never on the thread count or the
sequence length.
"""

from __future__ import annotations

import importlib.util
import math
from typing import TYPE_CHECKING, Any

from ferrofix import _native, _torch, rng, seeding
from ferrofix._args import choice, flag, integer, number
from ferrofix._arrays import as_array, c_contiguous, dtype_name, native_byte_order, rectangular
from ferrofix._memory import check_outputs_fit
from ferrofix.ddpm import DDPMSchedule
from ferrofix.errors import ConfigError, DtypeError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

__all__ = [
    "CosineSchedule",
    "CosineSquaredSchedule",
    "DDPMSchedule",
    "DummyNoiseSchedule",
    "GeometricSchedule",
    "LinearSchedule",
    "LogLinearSchedule",
    "NoiseSchedule",
    "mask_tokens",
    "uniform_corrupt",
]

# Stream of sample_t's uniforms ("samp"); masking uses its own streams in the core.
SAMPLE_T_STREAM = 0x7361_6D70
_FLOAT_KINDS = "f"
_SIXTEEN_BIT = ("float16", "bfloat16")


def _float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` (default float64) as a numpy floating dtype, or a DtypeError: times cast
    to an integer dtype would all truncate to 0."""
    import numpy as np

    if dtype is None:
        return np.dtype(np.float64)
    try:
        parsed = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):  # numpy parses strings as type specs
        parsed = None
    if parsed is None or parsed.kind != "f":
        raise DtypeError(f"dtype: must be a numpy floating dtype (e.g. float32), got {dtype!r}")
    return parsed


def _check_return_tensors(value: object) -> str:
    return choice("return_tensors", value, ("np", "pt"))


class NoiseSchedule:
    """A continuous-time schedule evaluated natively; subclasses fix the formulas.

    Args:
        return_tensors: what ``sample_t`` returns when it has no input to mirror:
            ``"np"`` (numpy, the default) or ``"pt"`` (a torch tensor).
    """

    _kind: str
    _params: tuple[float, float]
    #: σ(0), the schedule's minimum total noise.
    sigma_min: float

    def __init__(self, kind: str, params: tuple[float, float], return_tensors: str) -> None:
        self._kind, self._params = kind, params
        self.return_tensors = _check_return_tensors(return_tensors)
        _native.core().noise_schedule_check(kind, *params)
        self._sample_seed: int | None = None
        self._sample_offset = 0

    # --- evaluation ---------------------------------------------------------------------

    def _evaluate(self, quantities: list[str], x: Any) -> list[Any]:
        if _torch.is_tensor(x):
            return self._evaluate_tensor(quantities, x)
        import numpy as np

        if isinstance(x, (bool, np.bool_)):
            raise DtypeError(f"noise schedules take float inputs, got {x!r}")
        if isinstance(x, (int, float)) and not isinstance(x, np.generic):
            results = self._native(quantities, np.asarray(float(x)))
            return [float(r) for r in results]
        first = quantities[0]  # the inverses take a quantity, everything else times
        array = rectangular(first[len("t_from_") :] if first.startswith("t_from_") else "t", x)
        if array.dtype.kind in "iu":
            array = array.astype(np.float64)
        elif array.dtype.kind not in _FLOAT_KINDS:
            raise DtypeError(
                f"noise schedules do not support dtype {array.dtype}; "
                "supported: float64, float32, float16, bfloat16 (or integers)"
            )
        array = native_byte_order(array)
        results = self._native(quantities, c_contiguous(array))
        if isinstance(x, np.generic):
            return [r[()] for r in results]
        return results

    def _native(self, quantities: list[str], array: np.ndarray) -> list[np.ndarray]:
        import numpy as np

        dtype = dtype_name(array)
        bits = array.view(np.uint16) if dtype == "float16" else array
        results = _native.core().noise_schedule_eval(
            self._kind, *self._params, quantities, bits, dtype
        )
        return [r.view(np.float16) for r in results] if dtype == "float16" else results

    @_torch.eager_under_compile
    def _evaluate_tensor(self, quantities: list[str], t: Any) -> list[Any]:
        torch = _torch.loaded_torch()
        if not t.dtype.is_floating_point:
            if t.dtype == torch.bool or t.dtype.is_complex:  # as numpy's bools are refused
                raise DtypeError(
                    f"noise schedules do not support dtype {t.dtype}; "
                    "supported: float64, float32, float16, bfloat16 (or integers)"
                )
            t = t.to(torch.get_default_dtype())
        needs_grad = t.requires_grad and torch.is_grad_enabled()
        if t.device.type != "cpu" or needs_grad or _torch.in_transform(t):
            from ferrofix import _noise_torch

            _torch.check_has_values(t, "t")

            return _noise_torch.evaluate(self, quantities, t)
        dtype = _torch.dtype_name(t)
        results = _native.core().noise_schedule_eval(
            self._kind, *self._params, quantities, _torch.numpy_view(t, "t"), dtype
        )
        if dtype in _SIXTEEN_BIT:
            import numpy as np

            return [torch.from_numpy(r.view(np.int16)).view(t.dtype) for r in results]
        return [torch.from_numpy(r) for r in results]

    def total_noise(self, t: Any) -> Any:
        """σ(t): the integrated noise level at time ``t ∈ [0, 1]``."""
        return self._evaluate(["total_noise"], t)[0]

    def noise_rate(self, t: Any) -> Any:
        """σ'(t): the rate of the noise level at time ``t``."""
        return self._evaluate(["noise_rate"], t)[0]

    def alpha(self, t: Any) -> Any:
        """α(t) = exp(-σ(t)): the probability that a token is kept."""
        return self._evaluate(["alpha"], t)[0]

    def mask_probability(self, t: Any) -> Any:
        """1 - α(t): the probability that a token is masked (pass it to ``mask_tokens``)."""
        return self._evaluate(["mask_probability"], t)[0]

    def loss_weight(self, t: Any) -> Any:
        """σ'(t) / expm1(σ(t)), the MDLM ELBO weight; +inf where σ(t) = 0 (its limit)."""
        return self._evaluate(["loss_weight"], t)[0]

    def t_from_total_noise(self, total_noise: Any) -> Any:
        """The t with σ(t) = ``total_noise`` (inputs in [σ(0), σ(1)]; t clamped to [0, 1])."""
        return self._evaluate(["t_from_total_noise"], total_noise)[0]

    def t_from_noise_rate(self, noise_rate: Any) -> Any:
        """The t with σ'(t) = ``noise_rate``; ConfigError where σ' is not monotone."""
        return self._evaluate(["t_from_noise_rate"], noise_rate)[0]

    def forward(self, t: Any) -> tuple[Any, Any]:
        """``(noise_rate, total_noise)`` at ``t``, computed in one pass."""
        rate, total = self._evaluate(["noise_rate", "total_noise"], t)
        return rate, total

    __call__ = forward

    @property
    def sigma_max(self) -> float:
        """σ(1), the total noise at the end of the forward process."""
        return self.total_noise(1.0)

    # --- sampling -----------------------------------------------------------------------

    def sample_t(
        self,
        batch_size: int,
        *,
        antithetic: bool = True,
        eps: float = 1e-3,
        seed: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> Any:
        """Diffusion times ``t = (1 - eps)·u + eps`` in [eps, 1] for a batch.

        ``u`` is uniform from ferrofix's generator; with ``antithetic`` (the MDLM
        low-discrepancy sampler) ``u = (u/n + arange(n)/n) mod 1``, so each of the ``n``
        strata [k/n, (k+1)/n) holds exactly one ``u``.

        Args:
            batch_size: Number of times ``n``.
            antithetic: Stratify as above; plain i.i.d. uniforms when False.
            eps: Smallest time, in [0, 1).
            seed: An explicit seed makes the result a pure function of ``(seed, n)``. With
                None, successive calls continue one stream of the current seed (the test's
                seed under pytest), so a collator calling this per batch gets new times.
            device: torch device of the result (``return_tensors="pt"`` only).
            dtype: Result dtype; default float64 for numpy, torch's default dtype for torch.

        Returns:
            A numpy array, or a torch tensor when the schedule was built with
            ``return_tensors="pt"``.
        """
        import numpy as np

        n = integer("batch_size", batch_size, low=0)
        # The uniforms, the strata and the times: three float64 arrays of n.
        check_outputs_fit("batch_size", (n,), 8, "ask for fewer times", arrays=3)
        eps = number("eps", eps)
        if not 0.0 <= eps < 1.0:
            raise ConfigError(f"eps: must be in [0, 1), got {eps}")
        if device is not None and self.return_tensors != "pt":
            raise ConfigError("device: only applies with return_tensors='pt'")
        if seed is None:
            seed = seeding.current_seed()
            if seed != self._sample_seed:
                self._sample_seed, self._sample_offset = seed, 0
            offset, self._sample_offset = self._sample_offset, self._sample_offset + n
        else:
            offset = 0
        u = rng.uniform(n, seed, stream=SAMPLE_T_STREAM, offset=offset)  # (n,) float64
        if flag("antithetic", antithetic) and n:
            u = (u / n + np.arange(n) / n) % 1.0
        t = (1.0 - eps) * u + eps
        if self.return_tensors == "pt":
            import torch

            if dtype is not None and not (
                isinstance(dtype, torch.dtype) and dtype.is_floating_point
            ):
                raise DtypeError(f"dtype: must be a floating-point torch dtype, got {dtype!r}")
            return torch.from_numpy(t).to(dtype=dtype or torch.get_default_dtype(), device=device)
        return t.astype(_float_dtype(dtype), copy=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()}, return_tensors={self.return_tensors!r})"

    def _describe(self) -> str:
        raise NotImplementedError


class LogLinearSchedule(NoiseSchedule):
    """σ(t) = -log1p(-a·t), the MDLM default: 1 - α(t) = a·t is linear in t.

    Args:
        eps: a = 1 - eps, so α(1) = eps; in (0, 1).
        sigma_max: Alternatively σ(1) > 0 (a = 1 - exp(-sigma_max)); overrides ``eps``.
        return_tensors: See ``NoiseSchedule``.
    """

    sigma_min = 0.0

    def __init__(
        self, eps: float = 1e-3, *, sigma_max: float | None = None, return_tensors: str = "np"
    ) -> None:
        if sigma_max is None:
            self.eps = number("eps", eps)
            super().__init__("loglinear", (self.eps, 0.0), return_tensors)
        else:
            sigma_max = number("sigma_max", sigma_max)
            self.eps = math.exp(-sigma_max) if sigma_max > 0 else float("nan")
            super().__init__("loglinear_sigma_max", (sigma_max, 0.0), return_tensors)

    def _describe(self) -> str:
        return f"eps={self.eps!r}"


class LinearSchedule(NoiseSchedule):
    """σ(t) = σmin + t·(σmax - σmin); σ' is constant, so ``t_from_noise_rate`` raises.

    Args:
        sigma_min: σ(0) >= 0.
        sigma_max: σ(1) > sigma_min.
        return_tensors: See ``NoiseSchedule``.
    """

    def __init__(
        self, sigma_min: float = 0.0, sigma_max: float = 10.0, *, return_tensors: str = "np"
    ) -> None:
        self.sigma_min = number("sigma_min", sigma_min)
        super().__init__("linear", (self.sigma_min, number("sigma_max", sigma_max)), return_tensors)

    def _describe(self) -> str:
        return f"sigma_min={self._params[0]!r}, sigma_max={self._params[1]!r}"


class _CosineFamily(NoiseSchedule):
    """Schedules defined through α(t) with α(1) = eps."""

    sigma_min = 0.0
    _name: str

    def __init__(self, eps: float = 1e-3, *, return_tensors: str = "np") -> None:
        self.eps = number("eps", eps)
        super().__init__(self._name, (self.eps, 0.0), return_tensors)

    def _describe(self) -> str:
        return f"eps={self.eps!r}"


class CosineSchedule(_CosineFamily):
    """α(t) = eps + (1 - eps)·cos(πt/2); σ = -log α.

    Args:
        eps: α(1), in (0, 1).
        return_tensors: See ``NoiseSchedule``.
    """

    _name = "cosine"


class CosineSquaredSchedule(_CosineFamily):
    """α(t) = eps + (1 - eps)·cos²(πt/2); σ' rises then falls, so ``t_from_noise_rate``
    raises.

    Args:
        eps: α(1), in (0, 1).
        return_tensors: See ``NoiseSchedule``.
    """

    _name = "cosine_squared"


class GeometricSchedule(NoiseSchedule):
    """σ(t) = σmin^(1-t)·σmax^t (SEDD); σ' = σ·(log σmax - log σmin).

    Args:
        sigma_min: σ(0) > 0.
        sigma_max: σ(1) > sigma_min.
        return_tensors: See ``NoiseSchedule``.
    """

    def __init__(
        self, sigma_min: float = 1e-3, sigma_max: float = 1.0, *, return_tensors: str = "np"
    ) -> None:
        self.sigma_min = number("sigma_min", sigma_min)
        super().__init__(
            "geometric", (self.sigma_min, number("sigma_max", sigma_max)), return_tensors
        )

    def _describe(self) -> str:
        return f"sigma_min={self._params[0]!r}, sigma_max={self._params[1]!r}"


class DummyNoiseSchedule:
    """A schedule for code paths that must not use one: every method raises."""

    _MESSAGE = "This noise schedule does nothing."

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(self._MESSAGE)

    noise_rate = total_noise = alpha = mask_probability = loss_weight = _fail
    t_from_noise_rate = t_from_total_noise = forward = sample_t = _fail

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(self._MESSAGE)

    def __repr__(self) -> str:
        return "DummyNoiseSchedule()"


# --- forward processes ----------------------------------------------------------------------


class _Ids:
    """Token ids as a contiguous int numpy array, and how to give results back."""

    def __init__(self, input_ids: Any) -> None:
        import numpy as np

        # How results go back: as they are for numpy input, as tensors on the input's device
        # for torch input. Settled here once, since masking calls come once per batch.
        self._to_tensor: Callable[[np.ndarray], Any] | None = None
        if _torch.is_tensor(input_ids):
            from_numpy = _torch.loaded_torch().from_numpy
            device = input_ids.device
            if device.type == "cpu" and not input_ids.requires_grad:
                self._to_tensor = from_numpy
            else:
                self._to_tensor = lambda result: from_numpy(result).to(device)
            input_ids = _torch.host_array(input_ids, "input_ids")  # a CPU tensor's memory, shared
        array = input_ids if type(input_ids) is np.ndarray else as_array("input_ids", input_ids)
        array = native_byte_order(array)
        if array.dtype.kind in "iu" and array.dtype.itemsize < 4:
            array = array.astype(np.int32)
        elif array.dtype.kind == "u":  # uint32 fits int64 exactly; uint64 when its ids do
            if array.size and int(array.max()) >= 2**63:
                raise ConfigError(f"input_ids: id {array.max()} is past int64, so no token has it")
            array = array.astype(np.int64)
        self.array = c_contiguous(array)

    def back(self, result: np.ndarray) -> Any:
        return result if self._to_tensor is None else self._to_tensor(result)


def _probabilities(name: str, value: Any) -> np.ndarray:
    import numpy as np

    given = value
    if _torch.is_tensor(value):
        # Floats of any width to float64 (numpy has no bfloat16); bools stay bools, refused.
        is_bool = value.dtype == _torch.loaded_torch().bool
        value = _torch.host_array(value if is_bool else value.double(), name)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = None
    # Only numbers: numpy would also read "0.5" or True as a probability.
    if array is None or array.dtype.kind not in "iuf":
        raise ConfigError(f"{name}: must be a number or an array of numbers, got {given!r}")
    return c_contiguous(array.astype(np.float64, copy=False))


def _protect(protect: Any) -> tuple[np.ndarray | None, list[int] | None]:
    import numpy as np

    if protect is None:
        return None, None
    if _torch.is_tensor(protect):
        protect = _torch.host_array(protect, "protect")
    if isinstance(protect, (set, frozenset)):
        protect = sorted(protect)
    array = as_array("protect", protect)
    if array.dtype == np.bool_:
        return c_contiguous(array), None
    if array.size == 0:
        return None, []
    if array.dtype.kind in "iu" and array.ndim <= 1:
        return None, [int(v) for v in array.reshape(-1)]
    raise ConfigError(
        "protect: must be a boolean array shaped like input_ids or a list of token ids, "
        f"got {type(protect).__name__} of dtype {array.dtype}"
    )


def _int128(name: str, value: object) -> int:
    checked = integer(name, value)
    if not rng._INT128_MIN <= checked < rng._INT128_END:
        raise ConfigError(f"{name}: must fit the ids' dtype, got {checked}")
    return checked


@_torch.eager_under_compile
def _process(
    op: str,
    input_ids: Any,
    prob: tuple[str, Any],
    value: tuple[str, object],
    seed: int | None,
    protect: Any,
) -> tuple[Any, Any]:
    ids = _Ids(input_ids)
    probs = _probabilities(*prob)
    positions, protected_ids = _protect(protect)
    new_ids, replaced = getattr(_native.core(), op)(
        ids.array,
        probs,
        _int128(*value),
        rng._seed(seed),
        protect_positions=positions,
        protect_ids=protected_ids,
    )
    return ids.back(new_ids), ids.back(replaced)


def mask_tokens(
    input_ids: Any,
    mask_prob: Any,
    mask_token_id: int,
    *,
    seed: int | None = None,
    protect: Any = None,
) -> tuple[Any, Any]:
    """Absorbing-state forward process: replace tokens by ``mask_token_id`` at random.

    Token ``(row, position)`` is masked when 32 bits of ferrofix's Philox stream for
    ``(seed, row, position)`` fall below ``mask_prob·2**32``: probability 0 masks nothing,
    1 masks every unprotected token, and the result is identical for any thread count.

    Args:
        input_ids: Integer ids, ``(B, L)`` or ``(L,)``; numpy, nested lists or a torch
            tensor (CUDA tensors are processed on the CPU and moved back). int32 and int64
            come back as they are, narrower types as int32, uint32 and uint64 as int64.
        mask_prob: Masking probability in [0, 1]: a scalar, one per row (``(B,)`` or
            ``(B, 1)``, e.g. ``schedule.mask_probability(t)``), or one per token.
        mask_token_id: The id written at masked positions; must fit the ids' dtype.
        seed: Any integer in [0, 2**64); None uses the current seed (the test's seed).
        protect: Tokens never masked: a boolean array shaped like ``input_ids``, or a list
            of ids (padding, BOS, ...).

    Returns:
        ``(noised_ids, mask)``: the ids with masks written in, and a boolean array of the
        masked positions; numpy for numpy input, torch tensors for tensor input.

    Raises:
        ConfigError: a probability outside [0, 1], a mask id outside the ids' dtype, a bad
            seed or protect value.
        ShapeError: probabilities or ``protect`` that do not fit the ids' shape.
        DtypeError: non-integer ids.
    """
    return _process(
        "mask_tokens",
        input_ids,
        ("mask_prob", mask_prob),
        ("mask_token_id", mask_token_id),
        seed,
        protect,
    )


def uniform_corrupt(
    input_ids: Any,
    corrupt_prob: Any,
    vocab_size: int,
    *,
    seed: int | None = None,
    protect: Any = None,
) -> tuple[Any, Any]:
    """Uniform-transition forward process (SEDD): redraw tokens uniformly at random.

    Each unprotected token is, with probability ``corrupt_prob``, replaced by an id drawn
    uniformly from [0, vocab_size) (possibly the same id). Decisions and new ids come from
    independent counter-based streams of ``seed``.

    Args:
        input_ids: As for ``mask_tokens``.
        corrupt_prob: As ``mask_prob`` in ``mask_tokens``.
        vocab_size: Number of ids to draw from, >= 1 and within the ids' dtype.
        seed: Any integer in [0, 2**64); None uses the current seed.
        protect: As for ``mask_tokens``.

    Returns:
        ``(corrupted_ids, resampled)``: the new ids and a boolean array of the redrawn
        positions.

    Raises:
        ConfigError, ShapeError, DtypeError: as for ``mask_tokens``; ConfigError naming
            ``vocab_size`` when it is out of range.
    """
    return _process(
        "uniform_corrupt",
        input_ids,
        ("corrupt_prob", corrupt_prob),
        ("vocab_size", vocab_size),
        seed,
        protect,
    )


# --- what the fixtures build (ferrofix.fixtures.noise) ----------------------------------------


def fixture_return_tensors() -> str:
    """``"pt"`` when torch is installed (without importing it), else ``"np"``."""
    return "pt" if importlib.util.find_spec("torch") is not None else "np"


_CONTINUOUS = {
    "loglinear": lambda rt: LogLinearSchedule(eps=1e-3, return_tensors=rt),
    "linear": lambda rt: LinearSchedule(0.0, 10.0, return_tensors=rt),
    "cosine": lambda rt: CosineSchedule(eps=1e-3, return_tensors=rt),
    "cosine_squared": lambda rt: CosineSquaredSchedule(eps=1e-3, return_tensors=rt),
    "geometric": lambda rt: GeometricSchedule(1e-3, 1.0, return_tensors=rt),
}


def fixture_schedule(kind: str) -> NoiseSchedule:
    """The fixtures' continuous schedule of ``kind``: log-linear and cosine kinds with
    eps = 1e-3, linear σ in [0, 10], geometric σ in [1e-3, 1]; ``sample_t`` returns torch
    tensors when torch is installed, numpy otherwise."""
    kind = choice("kind", kind, tuple(_CONTINUOUS))
    return _CONTINUOUS[kind](fixture_return_tensors())
