"""Assertions for model tests: tensor closeness with RMS and max metrics, finiteness,
gradient flow, batch independence, causality, overfitting and determinism.

``compare_tensors`` computes every metric in one native pass over float64/32/16 or bfloat16
numpy arrays or torch tensors (CUDA tensors are copied to the host; the two sides may have
different dtypes). ``assert_close`` judges them Fast-LLM style: with
``scale = sqrt(mean(expected²) + rms_eps²)``, the RMS of the difference fails when it exceeds
both ``rms_abs`` and ``rms_rel · scale``, the largest absolute difference when it exceeds both
``max_abs`` and ``max_rel · scale`` (every tolerance times ``compare_factor``), and any
position where one side is NaN/inf and the other is not fails. Integer or bool data on
both sides is compared exactly unless a tolerance is given (as ``torch.testing`` does: the
float presets mean nothing for token ids or counts). Failures raise ``AssertionError``
listing every failing metric and the worst elements with their indices.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferrofix import _native, _torch
from ferrofix._args import choice, integer, number
from ferrofix._arrays import c_contiguous, dtype_name, native_byte_order, rectangular, shape_of
from ferrofix._model_outputs import logits_of
from ferrofix.errors import ConfigError, DtypeError, ShapeError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

__all__ = [
    "PRESETS",
    "Comparison",
    "assert_batch_independence",
    "assert_can_overfit",
    "assert_causal",
    "assert_close",
    "assert_deterministic",
    "assert_finite",
    "assert_gradients_flow",
    "compare_tensors",
]

#: (rms_rel, rms_abs) per preset; the max tolerances are 10x the RMS ones.
PRESETS = {"fp32": (1e-3, 1e-4), "bf16": (1.5e-2, 1.5e-3), "fp16": (1.2e-3, 3e-4)}
DEFAULT_RMS_EPS = 1e-4
WORST_SHOWN = 5


@dataclass(frozen=True)
class Comparison:
    """Statistics of ``actual - expected`` over the positions where both are finite."""

    numel: int
    rms: float
    max_abs: float
    max_index: tuple[int, ...]
    scale: float
    non_finite: int
    non_finite_mismatch: int

    @property
    def rms_rel(self) -> float:
        return _relative(self.rms, self.scale)

    @property
    def max_rel(self) -> float:
        return _relative(self.max_abs, self.scale)


def _relative(difference: float, scale: float) -> float:
    """``difference / scale``; with a zero scale (``rms_eps=0`` against all-zero
    ``expected``) no difference is 0 and any other is infinitely large."""
    if scale > 0:
        return difference / scale
    return 0.0 if difference == 0 else math.inf


def _host(value: Any, arg: str) -> tuple[np.ndarray, str]:
    """(C-contiguous numpy data, dtype name): 16-bit floats as uint16 bits."""
    import numpy as np

    if _torch.is_tensor(value):
        tensor = value.detach()
        name = _torch.dtype_name(tensor)
        if tensor.is_complex():  # .double() would drop the imaginary part without a word
            raise DtypeError(_unsupported(arg, name))
        if not tensor.is_floating_point():
            tensor, name = tensor.double(), "float64"
        elif name.startswith("float8"):  # numpy has no float8; float32 holds it exactly
            tensor, name = tensor.float(), "float32"
        return np.ascontiguousarray(_torch.numpy_view(tensor, arg)), name
    array = rectangular(arg, value)
    if array.dtype.kind in "biu":
        array = array.astype(np.float64)
    array = native_byte_order(array)
    name = dtype_name(array)
    if name not in ("float64", "float32", "float16"):
        raise DtypeError(_unsupported(arg, array.dtype))
    if name == "float16":
        return c_contiguous(array).view(np.uint16), name
    return c_contiguous(array), name


def _unsupported(arg: str, dtype: object) -> str:
    message = (
        f"{arg}: compare_tensors supports float64, float32, float16 and bfloat16 (torch) "
        f"data, float8 (torch) read as float32, and integers and bools read as float64; "
        f"got {dtype}"
    )
    if "complex" in str(dtype):
        message += "; compare torch.view_as_real(x) (or np.stack([x.real, x.imag], -1))"
    return message


def _is_integer_data(value: Any) -> bool:
    """Integer or bool data (a tensor, array, list or scalar), whose values are exact."""
    import numpy as np

    if _torch.is_tensor(value):
        return not (value.is_floating_point() or value.is_complex())
    return np.asarray(value).dtype.kind in "biu"


def _integer_mismatches(actual: Any, expected: Any, shape: tuple[int, ...]) -> list[str]:
    """The exact comparison of integer data: a line per differing element shown."""
    import numpy as np

    def host(value: Any, arg: str) -> np.ndarray:
        if _torch.is_tensor(value):
            value = _torch.host_array(value, arg)
        return np.asarray(value).reshape(-1)

    a, e = host(actual, "actual"), host(expected, "expected")
    differ = np.flatnonzero(a != e)
    lines = []
    for flat in differ[:WORST_SHOWN]:
        index = tuple(int(i) for i in np.unravel_index(flat, shape))
        lines.append(f"  at {index}: actual {a[flat].item()!r}, expected {e[flat].item()!r}")
    if len(differ):
        lines.insert(0, f"{len(differ)} of {a.size} integer elements differ; the first:")
    return lines


def compare_tensors(actual: Any, expected: Any, *, rms_eps: float = DEFAULT_RMS_EPS) -> Comparison:
    """RMS and max of ``actual - expected``, the index of the max, the RMS scale of
    ``expected`` and the non-finite counts, in one native pass."""
    import numpy as np

    shape, got = shape_of("expected", expected), shape_of("actual", actual)
    if got != shape:
        raise ShapeError(f"actual: expected shape {shape} (that of expected), got {got}")
    rms_eps = number("rms_eps", rms_eps, "a finite number >= 0")
    if not (rms_eps >= 0 and math.isfinite(rms_eps)):
        raise ConfigError(f"rms_eps: must be a finite number >= 0, got {rms_eps!r}")
    a, a_dtype = _host(actual, "actual")
    e, e_dtype = _host(expected, "expected")
    numel, rms, scale, max_abs, index, non_finite, mismatch = _native.core().compare_arrays(
        a.reshape(-1), a_dtype, e.reshape(-1), e_dtype, rms_eps
    )
    return Comparison(
        numel=numel,
        rms=rms,
        max_abs=max_abs,
        max_index=tuple(int(i) for i in np.unravel_index(index, shape)) if numel else (),
        scale=scale,
        non_finite=non_finite,
        non_finite_mismatch=mismatch,
    )


def _tolerances(preset: str | None, overrides: dict[str, float | None]) -> dict[str, float]:
    preset = choice("preset", preset, (*PRESETS, None))
    base: dict[str, float] = {}
    if preset is not None:
        rel, abs_ = PRESETS[preset]
        base = {"rms_rel": rel, "rms_abs": abs_, "max_rel": 10 * rel, "max_abs": 10 * abs_}
    for name, value in overrides.items():
        if value is None:
            continue
        tolerance = number(name, value, "a number >= 0")
        if not tolerance >= 0:
            raise ConfigError(f"{name}: must be a number >= 0, got {tolerance!r}")
        base[name] = tolerance
    return base


def _worst(actual: Any, expected: Any, shape: tuple[int, ...]) -> list[str]:
    import numpy as np

    a = _as_float64(actual, "actual")
    e = _as_float64(expected, "expected")
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - e).reshape(-1)
    diff = np.where(np.isnan(diff), np.inf, diff)
    k = min(WORST_SHOWN, diff.size)
    if k == 0:
        return []
    order = np.argsort(-diff, kind="stable")[:k]
    lines = []
    for flat in order:
        if not diff[flat] > 0:
            break
        index = tuple(int(i) for i in np.unravel_index(flat, shape))
        lines.append(
            f"  at {index}: actual {float(a.reshape(-1)[flat])!r}, "
            f"expected {float(e.reshape(-1)[flat])!r}"
        )
    return lines


def _as_float64(value: Any, arg: str) -> np.ndarray:
    import numpy as np

    if _torch.is_tensor(value):
        return _torch.host_array(value.detach().double(), arg)
    return np.asarray(value, dtype=np.float64)


def checked_compare_factor(value: object) -> float:
    """``value`` as the factor every tolerance is multiplied by, or a ``ConfigError``.

    A bool is no factor, and an infinite one would make every comparison pass.
    """
    factor = number("compare_factor", value, "a finite number > 0")
    if not 0 < factor < math.inf:
        raise ConfigError(f"compare_factor: must be a finite number > 0, got {factor!r}")
    return factor


def assert_close(
    actual: Any,
    expected: Any,
    *,
    preset: str | None = "fp32",
    rms_abs: float | None = None,
    rms_rel: float | None = None,
    max_abs: float | None = None,
    max_rel: float | None = None,
    rms_eps: float = DEFAULT_RMS_EPS,
    compare_factor: float = 1.0,
) -> Comparison:
    """Fail unless ``actual`` is close to ``expected`` (see the module docstring); returns the
    comparison. A metric without both tolerances (``preset=None`` and none given) is
    judged by the one it has. Integer or bool data on both sides, with no tolerance given,
    must be equal."""
    __tracebackhide__ = True
    compare_factor = checked_compare_factor(compare_factor)
    overrides = {"rms_abs": rms_abs, "rms_rel": rms_rel, "max_abs": max_abs, "max_rel": max_rel}
    tolerances = _tolerances(preset, overrides)
    if not tolerances:
        raise ConfigError("preset: with preset=None give at least one of rms_abs, rms_rel, ...")
    result = compare_tensors(actual, expected, rms_eps=rms_eps)
    exact = all(v is None for v in overrides.values()) and _is_integer_data(expected)
    if exact and _is_integer_data(actual):
        shape = shape_of("expected", expected)
        mismatches = _integer_mismatches(actual, expected, shape)
        if mismatches:
            header = (
                f"integer tensors differ (shape {shape}; compared exactly, no tolerance given):"
            )
            raise AssertionError("\n".join([header, *mismatches]))
        return result
    t = {name: value * compare_factor for name, value in tolerances.items()}
    failures = []
    for metric, value, rel_value in (
        ("rms", result.rms, result.rms_rel),
        ("max", result.max_abs, result.max_rel),
    ):
        abs_tol, rel_tol = t.get(f"{metric}_abs"), t.get(f"{metric}_rel")
        # `not <=`: a NaN metric is over every tolerance, never silently within it.
        over_abs = abs_tol is None or not value <= abs_tol
        over_rel = rel_tol is None or not rel_value <= rel_tol
        if (abs_tol is not None or rel_tol is not None) and over_abs and over_rel:
            failures.append(
                f"{metric} difference {value:.3e} (relative {rel_value:.3e}) exceeds "
                f"abs {_fmt(abs_tol)} and rel {_fmt(rel_tol)}"
            )
    if result.non_finite_mismatch:
        failures.append(f"{result.non_finite_mismatch} positions are NaN/inf on one side only")
    if failures:
        shape = shape_of("expected", expected)
        lines = [
            f"tensors differ (shape {shape}, scale {result.scale:.3e}, "
            f"compare_factor {compare_factor}):",
            *(f"- {f}" for f in failures),
            "worst elements:",
            *_worst(actual, expected, shape),
        ]
        raise AssertionError("\n".join(lines))
    return result


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3e}"


def assert_finite(value: Any, name: str = "tensor") -> None:
    """Fail when ``value`` holds NaN or inf, naming how many and the first index."""
    __tracebackhide__ = True
    import numpy as np

    if _torch.is_tensor(value):
        tensor = value.detach()
        # bfloat16 has no numpy dtype; complex keeps its imaginary part.
        array = _torch.host_array(tensor if tensor.is_complex() else tensor.double(), name)
    else:
        array = rectangular(name, value)
        if array.dtype.kind not in "biufc":
            raise DtypeError(f"{name}: assert_finite needs numbers, got dtype {array.dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{name} has {int(bad.sum())} non-finite values of {array.size}; first at {first}: "
            f"{array[first]!r}"
        )


def assert_gradients_flow(model: Any, loss: Any) -> None:
    """Backpropagate ``loss`` (from zeroed gradients) and fail naming every trainable
    parameter of ``model`` left with a missing or all-zero gradient."""
    __tracebackhide__ = True
    if not (hasattr(model, "named_parameters") and hasattr(model, "zero_grad")):
        raise DtypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(loss, "backward"):
        raise DtypeError(f"loss: expected a torch tensor, got {type(loss).__name__}")
    model.zero_grad(set_to_none=True)
    loss.backward()
    missing = [
        name
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
        and (parameter.grad is None or not bool(parameter.grad.ne(0).any()))
    ]
    if missing:
        raise AssertionError(
            f"{len(missing)} parameters got no gradient (None or all zero): {', '.join(missing)}"
        )


def _check_batch(name: str, value: Any) -> None:
    """Refuse anything but a tensor or array with a batch dimension: the assertions slice
    and modify it the way a model's input is."""
    import numpy as np

    if not (_torch.is_tensor(value) or isinstance(value, np.ndarray)) or value.ndim == 0:
        what = f"a {value.ndim}-d array" if hasattr(value, "ndim") else type(value).__name__
        raise DtypeError(f"{name}: expected a torch tensor or numpy array of a batch, got {what}")
    if _torch.is_tensor(value):
        _torch.check_has_values(value, name)


def _model_output(value: Any, batch_shape: tuple[int, ...]) -> Any:
    """The tensor of what ``model_fn`` returned (itself, or its ``logits``), checked to
    start with ``batch_shape`` (the input's batch, and for causality its positions)."""
    output = logits_of(value)
    if output is None:
        raise DtypeError(
            "model_fn: expected it to return a torch tensor or numpy array (or an output "
            f"with logits, as Hugging Face models return), got {type(value).__name__}; "
            "pass a function that picks the tensor to compare, e.g. lambda x: model(x)[0]"
        )
    shape = tuple(output.shape)
    if shape[: len(batch_shape)] != batch_shape:
        dims = "(B, L, ...)" if len(batch_shape) == 2 else "(B, ...)"
        raise ShapeError(
            f"model_fn: expected an output of shape {dims} starting with the input's "
            f"{batch_shape}, got {shape}"
        )
    return output


def assert_batch_independence(
    model_fn: Callable[[Any], Any], inputs: Any, index: int = 0, **close: Any
) -> None:
    """Row ``index`` of ``model_fn(inputs)`` equals ``model_fn(inputs[index:index+1])``: no
    information leaks between batch rows (``close`` goes to ``assert_close``).

    ``model_fn`` returns a tensor or array with the batch first, or a Hugging Face-style
    output whose ``logits`` are compared. A model in training mode (dropout, batch-norm
    statistics) differs between any two calls: put it in ``eval()`` first."""
    __tracebackhide__ = True
    _check_batch("inputs", inputs)
    index = integer("index", index, low=0, high=len(inputs) - 1)
    together = _model_output(model_fn(inputs), (len(inputs),))[index : index + 1]
    alone = _model_output(model_fn(inputs[index : index + 1]), (1,))
    try:
        assert_close(together, alone, **close)
    except AssertionError as error:
        raise AssertionError(f"row {index} changes with the rest of the batch:\n{error}") from None


def assert_causal(model_fn: Callable[[Any], Any], input_ids: Any, **close: Any) -> None:
    """Changing the last token of ``input_ids`` (B, L) leaves outputs at positions < L-1
    unchanged. The new last token is another id among those ``input_ids`` already spans
    (an id past them could be outside the model's vocabulary), or 1 when all are 0.

    ``model_fn`` returns a tensor or array of shape (B, L, ...), or a Hugging Face-style
    output whose ``logits`` are compared."""
    __tracebackhide__ = True
    _check_batch("input_ids", input_ids)
    shape = shape_of("input_ids", input_ids)
    if len(shape) != 2 or shape[1] < 2:
        raise ShapeError(f"input_ids: expected shape (B, L) with L >= 2, got {shape}")
    before = _model_output(model_fn(input_ids), shape)
    changed = input_ids.clone() if hasattr(input_ids, "clone") else input_ids.copy()
    top = int(input_ids.max())
    changed[:, -1] = (changed[:, -1] + 1) % (top + 1) if top >= 1 else 1
    after = _model_output(model_fn(changed), shape)
    try:
        assert_close(after[:, :-1], before[:, :-1], **close)
    except AssertionError as error:
        raise AssertionError(
            f"outputs before the last position changed with the last token (not causal):\n{error}"
        ) from None


def assert_can_overfit(
    model: Any,
    batch: Any,
    loss_fn: Callable[[Any, Any], Any],
    *,
    steps: int = 200,
    lr: float = 1e-2,
    threshold: float = 0.01,
) -> float:
    """Train a copy of ``model`` on one ``batch`` with Adam and fail unless
    ``loss_fn(model, batch)`` falls below ``threshold``; returns the final loss."""
    __tracebackhide__ = True
    import torch

    steps = integer("steps", steps, low=1)
    lr = number("lr", lr, "a finite number > 0")
    if not 0 < lr < math.inf:
        raise ConfigError(f"lr: must be a finite number > 0, got {lr!r}")
    threshold = number("threshold", threshold)
    if not (hasattr(model, "parameters") and callable(loss_fn)):
        bad = "model" if not hasattr(model, "parameters") else "loss_fn"
        given = model if bad == "model" else loss_fn
        raise DtypeError(
            f"{bad}: expected a torch.nn.Module and a callable, got {type(given).__name__}"
        )
    trained = copy.deepcopy(model)
    optimizer = torch.optim.Adam(trained.parameters(), lr=lr)
    initial = float(loss_fn(trained, batch).detach())
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(trained, batch).backward()
        optimizer.step()
    final = float(loss_fn(trained, batch).detach())
    if not final < threshold:
        raise AssertionError(
            f"could not overfit one batch: loss {initial:.4g} -> {final:.4g} after {steps} "
            f"Adam steps at lr {lr:g} (threshold {threshold:g})"
        )
    return final


def assert_deterministic(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Two calls of ``fn(*args, **kwargs)`` give bit-identical results (tensors, arrays,
    numbers, or tuples/lists/dicts/dataclasses of them; other objects are compared with
    ``==``)."""
    __tracebackhide__ = True
    first, second = fn(*args, **kwargs), fn(*args, **kwargs)
    difference = _first_difference(first, second, "result")
    if difference is not None:
        raise AssertionError(f"two calls differ: {difference}")


def _first_difference(
    a: Any, b: Any, path: str, seen: set[tuple[int, int]] | None = None
) -> str | None:
    """Where ``a`` and ``b`` first differ, bit for bit, or None. ``seen`` holds the pairs
    of objects already entered: each is being compared further up (a reference cycle) or
    was found equal (the walk stops at the first difference), so each pair is compared
    once, however often it is shared."""
    import numpy as np

    seen = set() if seen is None else seen
    if a is b or (id(a), id(b)) in seen:
        return None
    seen.add((id(a), id(b)))
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path} keys {sorted(a, key=repr)} vs {sorted(b, key=repr)}"
        for key in a:
            found = _first_difference(a[key], b[key], f"{path}[{key!r}]", seen)
            if found:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return f"{path} lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{i}]", seen)
            if found:
                return found
        return None
    arrays = [_torch.is_tensor(v) or isinstance(v, np.ndarray | np.generic) for v in (a, b)]
    if any(arrays):
        if not all(arrays) or _torch.is_tensor(a) != _torch.is_tensor(b):
            return f"{path} types {type(a).__name__} vs {type(b).__name__}"
        return _array_difference(a, b, path)
    attributes = _attributes_to_compare(a, b)
    if attributes is not None:
        if not dataclasses.is_dataclass(a) and vars(a).keys() != vars(b).keys():
            return f"{path} attributes {sorted(vars(a))} vs {sorted(vars(b))}"
        for name in attributes:
            found = _first_difference(getattr(a, name), getattr(b, name), f"{path}.{name}", seen)
            if found:
                return found
        return None
    if type(a) is float and type(b) is float:  # bit for bit, as arrays are: NaN is NaN
        same = struct.pack("<d", a) == struct.pack("<d", b)
    elif type(a) is not type(b):
        same = False
    else:
        try:
            same = bool(a == b)
        except Exception as error:  # an == that gives no single truth value
            raise DtypeError(
                f"{path}: cannot compare two {type(a).__name__} values "
                f"({type(error).__name__}: {error}); return tensors, arrays, numbers, or "
                "tuples, lists, dicts or dataclasses of them"
            ) from None
    return None if same else f"{path}: {a!r} vs {b!r}"


def _array_difference(a: Any, b: Any, path: str) -> str | None:
    """Where two tensors (or two arrays) first differ, bit for bit, or None."""
    import numpy as np

    if a.dtype != b.dtype:  # zeros of int32 and float32 have the same bytes
        return f"{path} dtypes {a.dtype} vs {b.dtype}"
    if tuple(a.shape) != tuple(b.shape):
        return f"{path} shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    x, y = a, b
    if _torch.is_tensor(a):
        x, y = _torch.numpy_view(a, path), _torch.numpy_view(b, path)
    bytes_x, bytes_y = np.asarray(x).tobytes(), np.asarray(y).tobytes()
    if bytes_x == bytes_y:
        return None
    # Bit for bit, per element: -0.0 is not 0.0, and NaN is NaN.
    width = np.asarray(x).dtype.itemsize
    bits_x = np.frombuffer(bytes_x, np.uint8).reshape(-1, width)
    bits_y = np.frombuffer(bytes_y, np.uint8).reshape(-1, width)
    flat = int(np.flatnonzero((bits_x != bits_y).any(axis=1))[0])
    first = tuple(int(i) for i in np.unravel_index(flat, tuple(x.shape)))
    return f"{path} differs at {first}: {a[first].item()!r} vs {b[first].item()!r}"


def _attributes_to_compare(a: Any, b: Any) -> list[str] | None:
    """The attributes two objects of one type are compared by, field by field: a
    dataclass's fields (its generated ``==`` would compare tensors with ``==``), or the
    instance attributes of a class that keeps ``object``'s identity ``==`` (a KV cache,
    say); None for anything else."""
    if type(a) is not type(b) or isinstance(a, type):
        return None
    if dataclasses.is_dataclass(a):
        return [field.name for field in dataclasses.fields(a)]
    if type(a).__eq__ is object.__eq__ and hasattr(a, "__dict__") and hasattr(b, "__dict__"):
        return list(vars(a))
    return None
