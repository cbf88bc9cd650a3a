"""``Tokenizer.pad``: HF ``tokenizer.pad`` semantics for already-encoded features.

Data collators (``DataCollatorWithPadding`` and friends) hand over a list of dicts; the
sequence keys are padded to one width, other keys pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# Imported by ``Tokenizer.pad`` on first use, so numpy is already needed here; at module
# level these names cost nothing per call (collators call ``pad`` for every batch).
import numpy as np

from ferrofix import _native, _torch
from ferrofix._args import choice, optional_flag
from ferrofix._arrays import rectangular, reject_bool_items
from ferrofix._memory import check_outputs_fit
from ferrofix.errors import ConfigError, DtypeError, ShapeError
from ferrofix.tokenizers import (
    PADDING_VALUES,
    RETURN_TENSORS_VALUES,
    Encoding,
    _as_tensors,
    _check_id_dtype,
    _ids_array,
    _positive,
)

if TYPE_CHECKING:
    from ferrofix.tokenizers import Tokenizer

# Sequence keys that get padded, and the value their padding holds (None: the pad id).
PADDED_KEYS = {
    "input_ids": None,
    "attention_mask": 0,
    "token_type_ids": 0,
    "special_tokens_mask": 1,
}


def _rows(values: Any, key: str) -> list[np.ndarray]:
    return [_ids_array(row, f"{key}[{i}]") for i, row in enumerate(values)]


def _is_single(input_ids: Any) -> bool:
    """One example (a flat sequence of ids) rather than a batch of sequences."""
    if hasattr(input_ids, "ndim"):
        return input_ids.ndim == 1
    return len(input_ids) > 0 and not hasattr(input_ids[0], "__len__")


def _batch_dict(features: Any) -> dict[str, Any]:
    if type(features) is not list and type(features) is not tuple:
        if isinstance(features, Mapping):
            return dict(features)
        if not isinstance(features, list | tuple):
            raise DtypeError(
                "encoded_inputs: expected a list of dicts or a dict of lists, got "
                f"{type(features).__name__}"
            )
    for i, feature in enumerate(features):
        # The exact-type test first: the ABC check costs more than the rest of the loop.
        if type(feature) is not dict and not isinstance(feature, Mapping):
            raise DtypeError(f"encoded_inputs[{i}]: expected a dict, got {type(feature).__name__}")
    keys = list(features[0]) if features else ["input_ids"]
    first_keys = set(keys)
    for i, feature in enumerate(features):
        if feature.keys() != first_keys:
            raise ConfigError(
                f"encoded_inputs[{i}]: has keys {sorted(feature)}, "
                f"but encoded_inputs[0] has {sorted(keys)}"
            )
    return {key: [feature[key] for feature in features] for key in keys}


def pad_features(
    tokenizer: Tokenizer,
    features: Any,
    *,
    padding: bool | str,
    max_length: int | None,
    pad_to_multiple_of: int | None,
    padding_side: str | None,
    return_tensors: str | None,
    return_attention_mask: bool | None,
) -> Encoding:
    side = tokenizer._padding_side(padding_side)
    padding = choice("padding", padding, PADDING_VALUES)
    return_tensors = choice("return_tensors", return_tensors, RETURN_TENSORS_VALUES)
    max_length = _positive("max_length", max_length)
    if max_length is None and padding == "max_length":
        max_length = tokenizer._model_limit()
    multiple = _positive("pad_to_multiple_of", pad_to_multiple_of)
    batch = _batch_dict(features)
    if "input_ids" not in batch:
        raise ConfigError(f"encoded_inputs: must have 'input_ids'; got keys {sorted(batch)}")
    first = batch["input_ids"]
    single = _is_single(first)
    if single:
        batch = {key: [value] for key, value in batch.items()}
    sample = batch["input_ids"][0] if len(batch["input_ids"]) else None
    if return_tensors is None and _torch.is_tensor(sample):
        return_tensors = "pt"
    elif return_tensors is None and isinstance(sample, np.ndarray):
        return_tensors = "np"

    pad = padding not in (False, "do_not_pad")
    # Collators hand over lists of ints; padded, those become one array in one conversion.
    lists = pad and all(type(row) is list for row in batch["input_ids"])
    rows = batch["input_ids"] if lists else _rows(batch["input_ids"], "input_ids")
    lengths = [len(row) for row in rows]
    width = max(lengths, default=0)
    if padding == "max_length":
        if max_length is None:
            raise ConfigError(
                "max_length: padding='max_length' needs max_length or the tokenizer's "
                "model_max_length"
            )
        width = max_length
    if pad and multiple is not None:
        width = -(-width // multiple) * multiple
    if pad:
        for i, n in enumerate(lengths):
            if n > width:
                raise ConfigError(
                    f"encoded_inputs: row {i} has {n} tokens, more than max_length={width}; "
                    "pad never truncates"
                )
    want_mask = optional_flag("return_attention_mask", return_attention_mask, True)
    if want_mask and "attention_mask" not in batch:
        batch["attention_mask"] = [[1] * n for n in lengths]
    if pad:
        padded_keys = sum(key in PADDED_KEYS for key in batch)
        hint = "lower max_length or pad_to_multiple_of"
        check_outputs_fit("padding", (len(rows), width), 8, hint, arrays=padded_keys)

    left = side == "left"
    out: dict[str, Any] = {}
    for key, values in batch.items():
        if key not in PADDED_KEYS:
            out[key] = values
            continue
        fill = PADDED_KEYS[key]
        fill = tokenizer._pad_id_for_padding() if fill is None else fill
        # input_ids' rows are the reference the other keys' lengths are checked against.
        if pad and (lists if key == "input_ids" else all(type(row) is list for row in values)):
            if key != "input_ids":
                _check_lengths(values, lengths, key)
            out[key] = _padded_lists(values, width, fill, left, key)
            continue
        key_rows = rows if key == "input_ids" and not lists else _rows(values, key)
        if not pad:
            out[key] = key_rows
            continue
        if key != "input_ids":
            _check_lengths(key_rows, lengths, key)
        padded = np.full((len(key_rows), width), fill, dtype=np.int64)
        for i, row in enumerate(key_rows):
            if left:
                padded[i, width - len(row) :] = row
            else:
                padded[i, : len(row)] = row
        out[key] = padded

    if return_tensors is None:
        lists = {
            k: (v.tolist() if isinstance(v, np.ndarray) else _plain(v, k)) for k, v in out.items()
        }
        return Encoding({k: v[0] for k, v in lists.items()} if single else lists)
    arrays = {}
    for key, value in out.items():
        if isinstance(value, list) and key in PADDED_KEYS:
            if len({len(r) for r in value}) > 1:
                raise ConfigError(
                    f"padding: '{key}' rows have different lengths; pass padding=True to "
                    "return tensors"
                )
            value = np.stack(value) if value else np.zeros((0, 0), dtype=np.int64)
        elif not isinstance(value, np.ndarray):
            value = _array(value, key)
        arrays[key] = value[0] if single else value
    return _as_tensors(arrays, return_tensors)


def _check_lengths(rows: list[Any], lengths: list[int], key: str) -> None:
    """Raise naming the first row of ``key`` whose length differs from input_ids'."""
    if [len(row) for row in rows] == lengths:
        return
    for i, row in enumerate(rows):
        if len(row) != lengths[i]:
            raise ConfigError(
                f"encoded_inputs: {key}[{i}] has length {len(row)}, input_ids[{i}] has {lengths[i]}"
            )


def _padded_lists(rows: list[list[Any]], width: int, fill: int, left: bool, key: str) -> np.ndarray:
    """``rows`` (lists of ints) padded to ``width`` with ``fill``, as one int64 array."""
    # Plain ints in plain lists, the collator's case, convert natively in one pass.
    padded = _native.core().pad_int_lists(rows, width, fill, left)
    if padded is not None:
        return padded
    # Anything else (numpy ints, bools, floats, ids past int64) goes through numpy, whose
    # dtype tells what is wrong (bools mixed with ints aside); a row numpy cannot stack is
    # then named.
    lists = []
    for row in rows:
        padding = [fill] * (width - len(row))
        lists.append(padding + row if left else row + padding)
    try:
        array = rectangular(key, lists)
        if array.size == 0:
            return np.zeros((len(rows), width), dtype=np.int64)
        _check_id_dtype(array, key)
        reject_bool_items(key, rows)  # numpy reads [True, 5] as [1, 5]
        if array.ndim != 2:
            raise ShapeError(f"{key}: expected flat sequences of ids, got nested lists")
    except (ValueError, TypeError):
        _rows(rows, key)  # row by row, to name the row at fault
        raise
    return array.astype(np.int64, copy=False)


def _plain(values: list[Any], key: str) -> list[Any]:
    """Lists of lists of ints from rows that may be arrays or tensors."""
    out = []
    for value in values:
        if _torch.is_tensor(value):
            _torch.check_has_values(value, key)
            value = value.detach().cpu()
        out.append(value.tolist() if hasattr(value, "tolist") else value)
    return out


def _array(values: list[Any], key: str) -> np.ndarray:
    try:
        return np.asarray(_plain(values, key))
    except ValueError as error:
        raise ConfigError(
            f"encoded_inputs: '{key}' cannot be stacked into one array ({error})"
        ) from None
