"""Test mixins: inherit one in a ``Test*`` class, provide its fixtures, get its tests.

A mixin is never collected on its own (``__test__`` is False on the mixin and switched back
on for subclasses), and each failure message names the fixture to look at.

``NoiseScheduleContract`` checks any continuous noise schedule given by a ``schedule``
fixture, a suite's own included::

    class TestMySchedule(NoiseScheduleContract):
        @pytest.fixture
        def schedule(self):
            return MySchedule()

Schedules are called with float64 numpy arrays; a torch-only schedule overrides
``as_input`` (e.g. ``torch.from_numpy``). Results may be numpy arrays or tensors on any
device.

``TokenizerContract`` checks any tokenizer with the HF surface (ours, a
``PreTrainedTokenizerFast``, a suite's own) given by a ``tokenizer`` fixture.

Model families get one mixin per kind of component (shapes: batch 2, sequence 16)::

    class TestMyModel(BaseModelTests):        # needs `model`, `run_forward`
    class TestMyLoss(BaseLossTests):          # needs `loss_fn`, `batch`
    class TestMyCollator(BaseCollatorTests):  # needs `collator`, `raw_examples`

Family-specific tests are extra methods on the subclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from ferrofix._model_outputs import logits_of

__all__ = [
    "BaseCollatorTests",
    "BaseLossTests",
    "BaseModelTests",
    "NoiseScheduleContract",
    "TokenizerContract",
]


class _Mixin:
    """Collected only through a user's ``Test*`` subclass."""

    __test__ = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = cls.__name__.startswith("Test")


def _numpy(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


class NoiseScheduleContract(_Mixin):
    """Properties every continuous noise schedule must have; needs a ``schedule`` fixture.

    Checks: σ(0) is the schedule's minimum (and equals ``schedule.sigma_min`` when it has
    one), σ increases, σ' >= 0 and matches a finite-difference derivative of σ, inverses
    round-trip (skipped where the schedule declares one not invertible by raising),
    ``sample_t`` lies in [eps, 1] with antithetic strata, and the mask probability lies in
    [0, 1], increases and equals 1 - exp(-σ).
    """

    #: Grid resolution for monotonicity and derivative checks.
    grid_points: ClassVar[int] = 257
    #: Relative tolerance of σ' against the central difference of σ.
    derivative_rtol: ClassVar[float] = 1e-4
    #: Absolute tolerance of inverse round trips in t.
    inverse_atol: ClassVar[float] = 1e-6

    def as_input(self, t: Any) -> Any:
        """Convert a float64 numpy array into what the schedule takes (default: itself)."""
        return t

    def _grid(self, lo: float = 0.0, hi: float = 1.0) -> Any:
        import numpy as np

        return np.linspace(lo, hi, self.grid_points)

    def _sigma(self, schedule: Any, t: Any) -> Any:
        return _numpy(schedule.total_noise(self.as_input(t)))

    def test_total_noise_starts_at_minimum(self, schedule: Any) -> None:
        import numpy as np

        sigma = self._sigma(schedule, self._grid())
        assert np.all(np.isfinite(sigma)), "schedule fixture: total_noise(t) is not finite"
        assert sigma[0] <= sigma.min(), (
            f"schedule fixture: total_noise(0) = {sigma[0]} is not the minimum {sigma.min()}"
        )
        declared = getattr(schedule, "sigma_min", None)
        if declared is not None:
            assert sigma[0] == pytest.approx(float(declared), rel=1e-6, abs=1e-12), (
                f"schedule fixture: total_noise(0) = {sigma[0]} but sigma_min = {declared}"
            )

    def test_total_noise_increases(self, schedule: Any) -> None:
        import numpy as np

        sigma = self._sigma(schedule, self._grid())
        steps = np.diff(sigma)
        assert np.all(steps > 0), (
            "schedule fixture: total_noise is not increasing; first decrease at "
            f"t = {self._grid()[int(np.argmin(steps > 0)) + 1]}"
        )

    def test_noise_rate_is_derivative_of_total_noise(self, schedule: Any) -> None:
        import numpy as np

        h = 1e-6
        t = self._grid(0.01, 0.99)
        rate = _numpy(schedule.noise_rate(self.as_input(t)))
        assert np.all(rate >= 0), "schedule fixture: noise_rate(t) is negative"
        difference = (self._sigma(schedule, t + h) - self._sigma(schedule, t - h)) / (2 * h)
        np.testing.assert_allclose(
            rate,
            difference,
            rtol=self.derivative_rtol,
            atol=1e-7,
            err_msg="schedule fixture: noise_rate is not the derivative of total_noise",
        )

    def _round_trip(self, schedule: Any, forward: str, inverse: str) -> None:
        import numpy as np

        t = self._grid()
        values = getattr(schedule, forward)(self.as_input(t))
        try:
            back = getattr(schedule, inverse)(values)
        except (NotImplementedError, ValueError) as error:
            pytest.skip(f"{inverse} is not available for this schedule: {error}")
        np.testing.assert_allclose(
            _numpy(back),
            t,
            atol=self.inverse_atol,
            err_msg=f"schedule fixture: {inverse}({forward}(t)) != t",
        )

    def test_t_from_total_noise_inverts_total_noise(self, schedule: Any) -> None:
        self._round_trip(schedule, "total_noise", "t_from_total_noise")

    def test_t_from_noise_rate_inverts_noise_rate(self, schedule: Any) -> None:
        self._round_trip(schedule, "noise_rate", "t_from_noise_rate")

    def test_forward_returns_rate_then_total(self, schedule: Any) -> None:
        import numpy as np

        t = self._grid()
        rate, total = schedule(self.as_input(t))
        np.testing.assert_allclose(_numpy(rate), _numpy(schedule.noise_rate(self.as_input(t))))
        np.testing.assert_allclose(_numpy(total), self._sigma(schedule, t))

    def test_sample_t_is_antithetic_in_eps_to_one(self, schedule: Any) -> None:
        import numpy as np

        n, eps = 64, 1e-3
        t = _numpy(schedule.sample_t(n, antithetic=True, eps=eps, seed=1234))
        assert t.shape == (n,), f"schedule fixture: sample_t({n}) has shape {t.shape}"
        assert np.all((t >= eps - 1e-7) & (t <= 1.0)), "schedule fixture: sample_t outside [eps, 1]"
        strata = np.floor((t - eps) / (1.0 - eps) * n + 1e-9).astype(int).clip(0, n - 1)
        assert sorted(strata) == list(range(n)), (
            "schedule fixture: antithetic sample_t does not put one time in each of the n strata"
        )

    def test_mask_probability_in_unit_interval_and_increasing(self, schedule: Any) -> None:
        import numpy as np

        t = self._grid()
        p = _numpy(schedule.mask_probability(self.as_input(t)))
        assert np.all((p >= 0) & (p <= 1)), "schedule fixture: mask_probability outside [0, 1]"
        assert np.all(np.diff(p) > 0), "schedule fixture: mask_probability is not increasing"
        np.testing.assert_allclose(
            p,
            -np.expm1(-self._sigma(schedule, t)),
            rtol=1e-6,
            atol=1e-12,
            err_msg="schedule fixture: mask_probability != 1 - exp(-total_noise)",
        )


class TokenizerContract(_Mixin):
    """Properties every HF-style tokenizer must have; needs a ``tokenizer`` fixture.

    Checks: special ids distinct and inside the vocabulary, vocabulary ids dense, ``encode``
    returns ints in range, decode of encode gives the text back, token/id conversions
    invert each other, ``padding=True`` pads to the longest text with ``pad_token_id`` and a
    matching attention mask, and ``padding="max_length"`` with truncation gives exactly
    ``max_length`` columns. Texts come from ``texts()``: by default decodes of random
    non-special ids; override it for tokenizers that normalise text.
    """

    #: Columns of the max_length padding/truncation check.
    max_length: ClassVar[int] = 4

    def texts(self, tokenizer: Any) -> list[str]:
        """Texts the round-trip and padding checks use (override for your own)."""
        import random

        rng = random.Random(0)
        special = set(getattr(tokenizer, "all_special_ids", []))
        ordinary = [i for i in range(len(tokenizer)) if i not in special]
        return [tokenizer.decode(rng.choices(ordinary, k=rng.randrange(1, 13))) for _ in range(8)]

    def _special_ids(self, tokenizer: Any) -> dict[str, int]:
        roles = ("pad", "cls", "mask", "eos", "bos", "sep", "unk")
        ids = {role: getattr(tokenizer, f"{role}_token_id", None) for role in roles}
        return {role: i for role, i in ids.items() if i is not None}

    def test_special_ids_are_distinct_and_in_range(self, tokenizer: Any) -> None:
        ids = self._special_ids(tokenizer)
        for role, i in ids.items():
            assert 0 <= i < len(tokenizer), (
                f"tokenizer fixture: {role}_token_id {i} is outside [0, {len(tokenizer)})"
            )
        assert len(set(ids.values())) == len(ids), (
            f"tokenizer fixture: special token ids collide: {ids}"
        )

    def test_vocabulary_ids_are_dense(self, tokenizer: Any) -> None:
        ids = sorted(tokenizer.get_vocab().values())
        assert ids == list(range(len(tokenizer))), (
            f"tokenizer fixture: get_vocab() ids are not 0..{len(tokenizer) - 1} "
            f"(len(tokenizer) = {len(tokenizer)}, {len(ids)} vocabulary entries)"
        )

    def test_encode_returns_ints_in_range(self, tokenizer: Any) -> None:
        for text in self.texts(tokenizer):
            ids = tokenizer.encode(text)
            assert isinstance(ids, list), (
                f"tokenizer fixture: encode() returned {type(ids).__name__}, not a list"
            )
            bad = [i for i in ids if not (isinstance(i, int) and 0 <= i < len(tokenizer))]
            assert not bad, f"tokenizer fixture: encode({text!r}) gave ids {bad} out of range"

    def test_decode_of_encode_round_trips(self, tokenizer: Any) -> None:
        for text in self.texts(tokenizer):
            ids = tokenizer.encode(text, add_special_tokens=False)
            decoded = tokenizer.decode(ids)
            assert decoded == text, (
                f"tokenizer fixture: decode(encode({text!r})) gave {decoded!r} (ids {ids})"
            )

    def test_tokens_and_ids_convert_both_ways(self, tokenizer: Any) -> None:
        for text in self.texts(tokenizer):
            ids = tokenizer.encode(text, add_special_tokens=False)
            tokens = tokenizer.convert_ids_to_tokens(ids)
            back = tokenizer.convert_tokens_to_ids(tokens)
            assert back == ids, (
                f"tokenizer fixture: convert_tokens_to_ids(convert_ids_to_tokens({ids})) "
                f"gave {back} (tokens {tokens})"
            )

    def test_padding_to_the_longest(self, tokenizer: Any) -> None:
        import numpy as np

        texts = self.texts(tokenizer)
        lengths = [len(tokenizer.encode(t)) for t in texts]
        out = tokenizer(texts, padding=True, return_tensors="np")
        ids, mask = np.asarray(out["input_ids"]), np.asarray(out["attention_mask"])
        assert ids.shape == mask.shape == (len(texts), max(lengths)), (
            f"tokenizer fixture: padding=True gave shapes {ids.shape} and {mask.shape}, "
            f"expected {(len(texts), max(lengths))}"
        )
        assert mask.sum(axis=1).tolist() == lengths, (
            f"tokenizer fixture: attention_mask row sums {mask.sum(axis=1).tolist()} "
            f"differ from the encoded lengths {lengths}"
        )
        assert (ids[mask == 0] == tokenizer.pad_token_id).all(), (
            f"tokenizer fixture: padding positions do not all hold pad_token_id "
            f"{tokenizer.pad_token_id}"
        )

    def test_max_length_padding_and_truncation(self, tokenizer: Any) -> None:
        import numpy as np

        texts = self.texts(tokenizer)
        out = tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",
        )
        shape = np.asarray(out["input_ids"]).shape
        assert shape == (len(texts), self.max_length), (
            f"tokenizer fixture: padding='max_length', truncation=True, "
            f"max_length={self.max_length} gave shape {shape}"
        )


def _gradient_report(parameters: Any) -> tuple[bool, list[str]]:
    """(whether some parameter has a non-zero gradient, names of those without one)."""
    flowing, missing = False, []
    for name, parameter in parameters:
        if not parameter.requires_grad:
            continue
        grad = parameter.grad
        if grad is None or not bool(grad.ne(0).any()):
            missing.append(name)
        else:
            flowing = True
    return flowing, missing


def _names(params: Any) -> list[str]:
    """Parameter names from a dict, (name, param) pairs or bare names."""
    if isinstance(params, Mapping):
        return list(params)
    names = []
    for item in params:
        names.append(item[0] if isinstance(item, tuple) else item)
    return names


class BaseModelTests(_Mixin):
    """Forward shapes and gradient flow of a language model.

    Needs ``model`` (a torch module) and ``run_forward``, a callable
    ``run_forward(batch_size=2, seq_len=16, partial_mask=False)`` returning logits
    ``(B, L, V)`` (or a Hugging Face-style output carrying them); V is the ``vocab_size``
    fixture (default ``simple_tokenizer.vocab_size``).
    ``partial_mask=True`` asks for a forward with part of the attention mask zeroed.
    """

    batch_size: ClassVar[int] = 2
    seq_len: ClassVar[int] = 16

    def _logits(self, run_forward: Any, **kwargs: Any) -> Any:
        output = run_forward(batch_size=self.batch_size, seq_len=self.seq_len, **kwargs)
        logits = logits_of(output)
        assert logits is not None, (
            f"run_forward fixture: returned {type(output).__name__}, expected the logits "
            "(a tensor) or an output carrying them (as Hugging Face models return)"
        )
        return logits

    def _check_shape(self, logits: Any, vocab_size: int, what: str) -> None:
        expected = (self.batch_size, self.seq_len, vocab_size)
        assert tuple(logits.shape) == expected, (
            f"run_forward fixture: {what} gave logits of shape {tuple(logits.shape)}, "
            f"expected (batch, seq_len, vocab_size) = {expected}"
        )

    def test_forward_output_shape(self, run_forward: Any, vocab_size: int) -> None:
        self._check_shape(self._logits(run_forward), vocab_size, "run_forward()")

    def test_forward_with_partial_mask(self, run_forward: Any, vocab_size: int) -> None:
        logits = self._logits(run_forward, partial_mask=True)
        self._check_shape(logits, vocab_size, "run_forward(partial_mask=True)")
        assert bool(logits.isfinite().all()), (
            "run_forward fixture: run_forward(partial_mask=True) gave non-finite logits "
            "(a fully masked attention row divides by zero?)"
        )

    def test_gradient_flows(self, model: Any, run_forward: Any) -> None:
        model.zero_grad(set_to_none=True)
        logits = self._logits(run_forward)
        assert logits.requires_grad, (
            "run_forward fixture: the logits do not require grad (is the forward under "
            "torch.no_grad(), or detached?)"
        )
        logits.sum().backward()
        flowing, missing = _gradient_report(model.named_parameters())
        assert flowing, (
            f"model fixture: no parameter got a non-zero gradient from logits.sum(); "
            f"without one: {missing}"
        )

    def test_weight_decay_param_split(self, model: Any) -> None:
        decay = getattr(model, "get_named_params_for_weight_decay", None)
        no_decay = getattr(model, "get_named_params_for_no_weight_decay", None)
        if decay is None or no_decay is None:
            pytest.skip(
                "model has no get_named_params_for_weight_decay / "
                "get_named_params_for_no_weight_decay"
            )
        with_decay, without = set(_names(decay())), set(_names(no_decay()))
        every = {name for name, _ in model.named_parameters()}
        both = sorted(with_decay & without)
        assert not both, f"model fixture: parameters in both weight-decay groups: {both}"
        assert with_decay | without == every, (
            f"model fixture: weight-decay groups miss {sorted(every - with_decay - without)} "
            f"and name unknown parameters {sorted((with_decay | without) - every)}"
        )


class BaseLossTests(_Mixin):
    """A loss module's output and gradients.

    Needs ``loss_fn`` (called as ``loss_fn(batch)``, returning a dict with ``"loss"``; its
    model at ``loss_fn.model``) and ``batch``.
    """

    def _output(self, loss_fn: Any, batch: Any) -> Mapping[str, Any]:
        out = loss_fn(batch)
        assert isinstance(out, Mapping), (
            f"loss_fn fixture: loss_fn(batch) returned {type(out).__name__}, not a dict"
        )
        return out

    def _loss(self, loss_fn: Any, batch: Any) -> Any:
        out = self._output(loss_fn, batch)
        assert "loss" in out, f"loss_fn fixture: no 'loss' key in its output (keys: {list(out)})"
        return out["loss"]

    def test_returns_loss_key(self, loss_fn: Any, batch: Any) -> None:
        self._loss(loss_fn, batch)

    def test_loss_is_scalar(self, loss_fn: Any, batch: Any) -> None:
        shape = tuple(self._loss(loss_fn, batch).shape)
        assert shape == (), f"loss_fn fixture: the loss has shape {shape}, expected a scalar"

    def test_loss_is_finite(self, loss_fn: Any, batch: Any) -> None:
        loss = self._loss(loss_fn, batch)
        assert bool(loss.isfinite().all()), (
            f"loss_fn fixture: the loss is {loss.item() if loss.numel() == 1 else loss} "
            "on the batch fixture"
        )

    def test_loss_requires_grad(self, loss_fn: Any, batch: Any) -> None:
        assert self._loss(loss_fn, batch).requires_grad, (
            "loss_fn fixture: the loss does not require grad (computed under no_grad, "
            "detached, or from a model without trainable parameters?)"
        )

    def test_gradients_reach_model(self, loss_fn: Any, batch: Any) -> None:
        model = getattr(loss_fn, "model", None)
        assert model is not None, "loss_fn fixture: has no .model to check gradients on"
        model.zero_grad(set_to_none=True)
        self._loss(loss_fn, batch).backward()
        flowing, missing = _gradient_report(model.named_parameters())
        assert flowing, (
            f"loss_fn fixture: backward() left every parameter of loss_fn.model without a "
            f"gradient: {missing}"
        )


class BaseCollatorTests(_Mixin):
    """A collator's output keys and shapes.

    Needs ``collator`` (called as ``collator(raw_examples)``) and ``raw_examples`` (a list).
    The targets are looked up under ``target_key`` (``"target_ids"``; set ``"labels"`` for
    HF-style collators).
    """

    target_key: ClassVar[str] = "target_ids"

    def test_output_has_target_ids(self, collator: Any, raw_examples: Any) -> None:
        out = collator(raw_examples)
        assert self.target_key in out, (
            f"collator fixture: no {self.target_key!r} in its output (keys: {list(out)})"
        )

    def test_output_shapes_consistent(self, collator: Any, raw_examples: Any) -> None:
        out = collator(raw_examples)
        ids = out["input_ids"]
        assert ids.shape[0] == len(raw_examples), (
            f"collator fixture: input_ids has batch dimension {ids.shape[0]} for "
            f"{len(raw_examples)} raw_examples"
        )
        if "attention_mask" in out:
            mask_shape = tuple(out["attention_mask"].shape)
            assert mask_shape == tuple(ids.shape), (
                f"collator fixture: attention_mask shape {mask_shape} differs from "
                f"input_ids shape {tuple(ids.shape)}"
            )
        block_size = getattr(collator, "block_size", None)
        if block_size is not None:
            assert ids.shape[-1] <= block_size, (
                f"collator fixture: sequences of length {ids.shape[-1]} exceed "
                f"collator.block_size = {block_size}"
            )
