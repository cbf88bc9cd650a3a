"""Sequence packing and bin-packing: exact strategies, lower bounds, packed batches, checks.

``pack(lengths, capacity)`` assigns items to bins with one of six classic strategies, each
exactly the obvious quadratic loop (ties go to the lowest bin index) but in O(log) per item.
``pack_sequences`` turns documents into a padded ``(rows, capacity)`` batch with position ids,
document ids, labels that never cross a document boundary and flash-attn ``cu_seqlens``;
``check_packing`` finds every kind of packing bug in such a batch, whoever built it.

Batch conventions (what ``pack_sequences`` builds and ``check_packing`` expects):

- a *segment* is one packed item: a whole document, or one chunk of it under
  ``overflow="split"``; ``position_ids`` run 0, 1, ... inside each segment;
  ``document_ids`` hold the source document's index and -1 on padding;
- padding fills each row after its last segment: ``pad_token_id``, label ``ignore_index``,
  position 0, attention mask 0 (``check_packing`` leaves position ids on padding alone:
  builders differ there, and the attention mask already excludes those positions);
- ``labels="aligned"`` (HF's DataCollatorWithFlattening, for losses that shift internally)
  copies the tokens with ``ignore_index`` at each segment's first token; ``"shifted"`` holds
  the next token of the same segment with ``ignore_index`` at each segment's last token;
- ``cu_seqlens`` (int32) are the segment boundaries over the flattened batch, padding
  excluded; ``seq_lengths`` the tokens per row; ``document_starts`` each row's segment starts
  padded with -1.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ferrofix import _native, _torch
from ferrofix._args import choice, flag, integer, number
from ferrofix._arrays import as_array, c_contiguous, rectangular, reject_bool_items, shape_of
from ferrofix._memory import check_outputs_fit
from ferrofix.errors import ConfigError, DtypeError, ShapeError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

__all__ = [
    "PackedExample",
    "Packing",
    "PackingReport",
    "Violation",
    "assert_valid_packing",
    "block_attention_mask",
    "check_packing",
    "cu_seqlens_from_position_ids",
    "document_starts_from_position_ids",
    "make_attention_mask",
    "pack",
    "pack_sequences",
    "position_ids_from_document_starts",
    "release_batch_buffers",
]

STRATEGIES = ("next_fit", "first_fit", "best_fit", "ffd", "bfd", "wfd")
OVERFLOWS = ("error", "truncate", "split")
_MAX_CAPACITY = 2**31 - 1
_MAX_DIM = 2**63 - 1  # numpy's largest dimension


def _capacity(capacity: object) -> int:
    return integer("capacity", capacity, low=1, high=_MAX_CAPACITY)


def _integer_array(name: str, value: Any, *, ndim: int | None = 1) -> np.ndarray:
    """An int32/int64 numpy array (other integer types widen to int64)."""
    import numpy as np

    if (
        type(value) is np.ndarray
        and value.dtype in (np.int32, np.int64)  # native byte order only
        and (ndim is None or value.ndim == ndim)
    ):
        return c_contiguous(value)  # the common case, without the checks below
    if _torch.is_tensor(value):
        value = _torch.host_array(value, name)
    array = as_array(name, value)
    if array.dtype == np.bool_ or array.dtype.kind not in "iu":
        if array.size == 0 and array.dtype.kind == "f":  # np.asarray([]) is float64
            array = array.astype(np.int64)
        else:
            raise DtypeError(
                f"{name}: must be an integer array (int32 or int64), got dtype {array.dtype}"
            )
    if array.dtype not in (np.int32, np.int64):
        if array.dtype.kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
            raise ConfigError(f"{name}: values must fit in int64")
        array = array.astype(np.int64)
    if ndim is not None and array.ndim != ndim:
        want = "(N,)" if ndim == 1 else "(B, C)"
        raise ShapeError(f"{name}: expected shape {want}, got {array.shape}")
    return c_contiguous(array)


class Packing:
    """Items assigned to bins by :func:`pack`.

    Items are the packed pieces: the input lengths themselves, or under ``overflow="split"``
    their chunks (``item_source`` and ``item_offset`` trace each chunk to its input).

    Attributes:
        bin_of_item: int32 ``(items,)``: each item's bin.
        offset_in_bin: int32 ``(items,)``: where each item starts in its bin.
        bin_offsets: int64 ``(bins + 1,)``: CSR pointers into ``items``.
        items: int32 ``(items,)``: item indices grouped by bin, each bin in placement order.
        item_lengths: int32 ``(items,)``: each item's length (after truncation or splitting).
        capacity: The bin capacity.
        strategy: The strategy used.
    """

    def __init__(self, arrays: dict[str, np.ndarray], capacity: int, strategy: str) -> None:
        self.bin_of_item = arrays["bin_of_item"]
        self.offset_in_bin = arrays["offset_in_bin"]
        self.bin_offsets = arrays["bin_offsets"]
        self.items = arrays["items"]
        self.item_lengths = arrays["item_lengths"]
        self._source = arrays.get("item_source")
        self._source_offset = arrays.get("item_offset")
        self.capacity = capacity
        self.strategy = strategy

    @property
    def item_source(self) -> np.ndarray:
        """int32 ``(items,)``: the input index each item comes from."""
        import numpy as np

        if self._source is None:
            return np.arange(len(self.item_lengths), dtype=np.int32)
        return self._source

    @property
    def item_offset(self) -> np.ndarray:
        """int64 ``(items,)``: where each item starts inside its input."""
        import numpy as np

        if self._source_offset is None:
            return np.zeros(len(self.item_lengths), dtype=np.int64)
        return self._source_offset

    @property
    def num_bins(self) -> int:
        return len(self.bin_offsets) - 1

    @property
    def fill(self) -> float:
        """Packed length over ``num_bins * capacity`` (0.0 when there are no bins)."""
        if self.num_bins == 0:
            return 0.0
        return float(self.item_lengths.sum(dtype="int64")) / (self.num_bins * self.capacity)

    @functools.cached_property
    def _bounds(self) -> tuple[int, int]:
        return tuple(_native.core().lower_bounds(self.item_lengths, self.capacity))

    @property
    def lower_bound_l1(self) -> int:
        """ceil(total length / capacity): no packing uses fewer bins."""
        return self._bounds[0]

    @property
    def lower_bound_l2(self) -> int:
        """Martello and Toth's L2 bound (>= L1): no packing uses fewer bins."""
        return self._bounds[1]

    @property
    def bins_over_l2(self) -> float:
        """``num_bins / lower_bound_l2`` (1.0 is provably optimal; 1.0 with no items)."""
        return self.num_bins / self.lower_bound_l2 if self.lower_bound_l2 else 1.0

    def bins(self) -> list[list[int]]:
        """Item indices per bin, in placement order (for small inputs and debugging)."""
        items = self.items.tolist()
        offsets = self.bin_offsets.tolist()
        return [items[start:end] for start, end in itertools.pairwise(offsets)]

    def __repr__(self) -> str:
        return (
            f"Packing(strategy={self.strategy!r}, capacity={self.capacity}, "
            f"items={len(self.item_lengths)}, bins={self.num_bins}, fill={self.fill:.4f})"
        )


def pack(lengths: Any, capacity: int, strategy: str = "bfd", overflow: str = "error") -> Packing:
    """Pack integer lengths into bins of ``capacity``.

    Args:
        lengths: 1-D integers >= 1 (list, numpy array or torch tensor).
        capacity: Bin size, an integer in [1, 2**31 - 1].
        strategy: ``"next_fit"``, ``"first_fit"``, ``"best_fit"`` (input order), or
            ``"ffd"``, ``"bfd"``, ``"wfd"`` (lengths sorted decreasing, ties by index).
        overflow: For lengths over the capacity: ``"error"``, ``"truncate"`` or
            ``"split"`` (consecutive chunks of at most ``capacity``).

    Returns:
        The :class:`Packing`.

    Raises:
        ConfigError: a bad capacity, strategy, overflow, or length (< 1, or over the
            capacity with ``overflow="error"``; the message names the first index).
        DtypeError: lengths that are not integers.
        ShapeError: lengths that are not 1-D.
    """
    capacity = _capacity(capacity)
    strategy = choice("strategy", strategy, STRATEGIES)
    overflow = choice("overflow", overflow, OVERFLOWS)
    array = _integer_array("lengths", lengths)
    arrays = _native.core().pack(array, capacity, strategy, overflow)
    return Packing(arrays, capacity, strategy)


def _documents(sequences: Any) -> tuple[np.ndarray, np.ndarray]:
    """(concatenated int64 tokens, int64 lengths) from a list of sequences or a tuple."""
    import numpy as np

    if isinstance(sequences, tuple):
        if len(sequences) != 2:
            raise ConfigError(
                "sequences: a tuple must be (flat_ids, lengths), got a tuple of "
                f"{len(sequences)} items"
            )
        tokens = _integer_array("sequences", sequences[0]).astype(np.int64, copy=False)
        lengths = _integer_array("lengths", sequences[1]).astype(np.int64, copy=False)
        return c_contiguous(tokens), c_contiguous(lengths)
    if not isinstance(sequences, list):
        raise ConfigError(
            "sequences: must be a list of token sequences or a (flat_ids, lengths) tuple, "
            f"got {type(sequences).__name__}"
        )
    # Lists of plain ints, the usual test input, are read natively in one pass.
    native = _native.core().flatten_int_lists(sequences)
    if native is not None:
        return native
    if all(isinstance(s, list) for s in sequences):
        lengths = np.fromiter((len(s) for s in sequences), np.int64, len(sequences))
        tokens = list(itertools.chain.from_iterable(sequences))
        flat = np.asarray(tokens)
        if flat.size and flat.dtype.kind not in "iu":
            raise DtypeError(f"sequences: tokens must be integers, got dtype {flat.dtype}")
        if flat.size:
            reject_bool_items("sequences", sequences)
        return flat.astype(np.int64, copy=False), lengths
    arrays = [_integer_array(f"sequences[{i}]", s) for i, s in enumerate(sequences)]
    lengths = np.fromiter((len(a) for a in arrays), np.int64, len(arrays))
    tokens = np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, np.int64)
    return tokens, lengths


def _as_tensors(batch: dict[str, Any], return_tensors: str) -> dict[str, Any]:
    if return_tensors == "np":
        return batch
    import torch

    return {k: torch.from_numpy(v) if hasattr(v, "dtype") else v for k, v in batch.items()}


def pack_sequences(
    sequences: Any,
    capacity: int,
    strategy: str = "bfd",
    overflow: str = "error",
    pad_token_id: int = 0,
    ignore_index: int = -100,
    labels: str = "aligned",
    return_tensors: str = "np",
) -> dict[str, Any]:
    """Pack documents into a padded ``(rows, capacity)`` batch (see the module conventions).

    Args:
        sequences: A list of token sequences (lists, numpy arrays or tensors), or a tuple
            ``(flat_ids, lengths)`` of all tokens concatenated and each document's length.
        capacity: Tokens per row.
        strategy: As for :func:`pack`.
        overflow: As for :func:`pack`; ``"truncate"`` keeps each document's first tokens.
        pad_token_id: Token id on padding.
        ignore_index: Label on padding and at segment boundaries.
        labels: ``"aligned"`` or ``"shifted"``.
        return_tensors: ``"np"`` or ``"pt"``.

    Returns:
        A dict with ``input_ids``, ``labels``, ``position_ids``, ``document_ids``,
        ``attention_mask`` (int64, ``(rows, capacity)``), ``cu_seqlens`` (int32),
        ``max_seqlen`` (int), ``document_starts`` (int64, ``(rows, max_segments)``) and
        ``seq_lengths`` (int64, ``(rows,)``). The five ``(rows, capacity)`` arrays of 1 MiB
        and more come from a small pool (see :func:`release_batch_buffers`).

    Raises:
        ConfigError: bad options, empty documents, or a document over the capacity with
            ``overflow="error"``.
        DtypeError: tokens that are not integers.
    """
    capacity = _capacity(capacity)
    strategy = choice("strategy", strategy, STRATEGIES)
    overflow = choice("overflow", overflow, OVERFLOWS)
    labels = choice("labels", labels, ("aligned", "shifted"))
    return_tensors = choice("return_tensors", return_tensors, ("np", "pt"))
    pad_token_id = integer("pad_token_id", pad_token_id, low=-(2**63), high=2**63 - 1)
    ignore_index = integer("ignore_index", ignore_index, low=-(2**63), high=2**63 - 1)
    tokens, lengths = _documents(sequences)
    batch = _native.core().pack_sequences(
        tokens, lengths, capacity, strategy, overflow, pad_token_id, ignore_index, labels
    )
    return _as_tensors(batch, return_tensors)


def release_batch_buffers() -> int:
    """Free the idle buffers :func:`pack_sequences` keeps for reuse; returns the bytes freed.

    The five ``(rows, capacity)`` arrays of a batch, when 1 MiB or more, live in memory that
    returns to a small pool (at most five buffers, one batch) once no array or tensor views
    it, so the next batch reuses it instead of faulting in fresh pages. Call this to give
    that memory back early.
    """
    return _native.core().release_packed_batch_buffers()


class Violation(NamedTuple):
    """One packing bug: its kind, where (-1 when not tied to a row or position), and what."""

    kind: str
    row: int
    position: int
    detail: str

    def __str__(self) -> str:
        where = [f"row {self.row}"] if self.row >= 0 else []
        where += [f"position {self.position}"] if self.position >= 0 else []
        return f"{self.kind} at {', '.join(where) or 'batch level'}: {self.detail}"


@dataclass(frozen=True)
class PackingReport:
    """What :func:`check_packing` found: all violations counted, the first 1000 kept."""

    num_violations: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.num_violations == 0

    def kinds(self) -> set[str]:
        """The kinds among the kept violations."""
        return {v.kind for v in self.violations}

    def __str__(self) -> str:
        if self.ok:
            return "packed batch is valid"
        shown = "\n".join(f"  {v}" for v in self.violations[:_SHOWN])
        more = self.num_violations - min(len(self.violations), _SHOWN)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        return f"packed batch has {self.num_violations} violation(s):\n{shown}{tail}"


_SHOWN = 10
_GRID_KEYS = ("labels", "position_ids", "attention_mask")


def _grid(
    batch: Mapping[str, Any], name: str, shape: tuple[int, ...], like: str = "input_ids"
) -> np.ndarray | None:
    import numpy as np

    array = batch.get(name)
    if array is None:
        return None
    if type(array) is np.ndarray and array.dtype == np.int64 and array.shape == shape:
        return c_contiguous(array)  # what pack_sequences returns, without the checks below
    if _torch.is_tensor(array):
        array = _torch.host_array(array, name)
    array = rectangular(name, array)
    if array.dtype == np.bool_ and name == "attention_mask":  # a bool mask is a mask
        array = array.astype(np.int64)
    array = _integer_array(name, array, ndim=None).astype(np.int64, copy=False)
    if array.shape != shape:
        raise ShapeError(f"{name}: expected shape {shape} like {like}, got {array.shape}")
    return c_contiguous(array)


def _derived_document_ids(position_ids: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Segment ids from position resets (a new segment at each 0), -1 where masked out."""
    import numpy as np

    padding = np.zeros(position_ids.shape, bool) if mask is None else mask == 0
    starts = (position_ids == 0) & ~padding
    starts[:, :1] |= ~padding[:, :1]  # (a slice, so rows of width 0 pass)
    previous_padding = np.zeros_like(padding)
    previous_padding[:, 1:] = padding[:, :-1]
    starts |= previous_padding & ~padding
    ids = np.cumsum(starts.ravel()).reshape(starts.shape) - 1
    return np.where(padding, -1, ids).astype(np.int64)


def _dense_mask_violations(mask: np.ndarray, document_ids: np.ndarray) -> list[Violation]:
    """A (B, C, C) mask must be the causal or the full block mask of the documents."""
    import numpy as np

    mask = mask.astype(bool)
    causal = block_attention_mask(document_ids, causal=True)
    if np.array_equal(mask, causal) or np.array_equal(mask, block_attention_mask(document_ids)):
        return []
    bad = np.argwhere(mask != causal)
    row, query, key = (int(v) for v in bad[0])
    detail = (
        f"dense mask[{row}, {query}, {key}] is {bool(mask[row, query, key])}; expected the "
        f"causal block mask of document_ids ({len(bad)} entries differ)"
    )
    return [Violation("attention_mask", row, query, detail)]


# The varlen-attention keys under pack_sequences' names and under those of Hugging Face's
# DataCollatorWithFlattening (return_flash_attn_kwargs=True); every one present is checked.
_CU_SEQLENS_KEYS = ("cu_seqlens", "cu_seq_lens_q", "cu_seq_lens_k")
_MAX_SEQLEN_KEYS = ("max_seqlen", "max_length_q", "max_length_k")


def check_packing(
    batch: Mapping[str, Any],
    sequences: Any = None,
    capacity: int | None = None,
    pad_token_id: int = 0,
    ignore_index: int = -100,
    labels: str = "aligned",
) -> PackingReport:
    """Check a packed batch against the conventions above; never raises on a bad batch.

    Kinds: ``over_capacity``; ``token_lost``, ``token_duplicated``, ``token_reordered``
    (against ``sequences``, when given); ``position_ids``; ``document_ids``; ``cu_seqlens``
    (also ``max_seqlen``); ``document_starts``; ``seq_lengths``; ``label_crosses_boundary``;
    ``label_mismatch``; ``label_not_ignored_on_padding``; ``attention_mask`` (2-D, or a
    dense ``(B, C, C)`` mask that must be the block mask of the documents); ``pad_token``;
    ``seq_idx``. Optional keys are checked when present. A batch without ``document_ids``
    gets segments from ``position_ids`` resets, matched to ``sequences`` in order of
    appearance, so a Hugging Face ``DataCollatorWithFlattening`` batch is checked as it
    comes: its ``cu_seq_lens_q``/``_k`` and ``max_length_q``/``_k`` as ``cu_seqlens`` and
    ``max_seqlen``, and its ``seq_idx`` (each token's segment ordinal over the flattened
    batch; not checked on padding).

    Args:
        batch: A dict of numpy arrays or tensors, as :func:`pack_sequences` returns.
        sequences: The source documents, as :func:`pack_sequences` takes them.
        capacity: Most tokens a row may hold (default: no limit beyond the row width).
        pad_token_id: Expected token on padding.
        ignore_index: Expected label on padding and at boundaries.
        labels: ``"aligned"`` or ``"shifted"``.

    Returns:
        The :class:`PackingReport`.

    Raises:
        ShapeError: arrays whose shapes do not match ``input_ids`` ``(B, C)``.
        ConfigError: bad options, or a batch with neither document nor position ids.
    """
    import numpy as np

    labels = choice("labels", labels, ("aligned", "shifted"))
    capacity = None if capacity is None else _capacity(capacity)
    pad_token_id = integer("pad_token_id", pad_token_id, low=-(2**63), high=2**63 - 1)
    ignore_index = integer("ignore_index", ignore_index, low=-(2**63), high=2**63 - 1)
    if not isinstance(batch, Mapping):
        raise DtypeError(
            "batch: expected a dict of arrays or tensors (as pack_sequences returns), "
            f"got {type(batch).__name__}"
        )
    if batch.get("input_ids") is None:
        raise ConfigError("batch: must contain 'input_ids'")
    given_shape = shape_of("input_ids", batch["input_ids"])
    input_ids = _grid(batch, "input_ids", given_shape)
    if input_ids is None or input_ids.ndim != 2:
        raise ShapeError(f"input_ids: expected shape (B, C), got {given_shape}")
    shape = input_ids.shape
    grids = {name: _grid(batch, name, shape) for name in ("labels", "position_ids")}
    violations: list[Violation] = []
    mask = batch.get("attention_mask")
    mask_ndim = None if mask is None else len(shape_of("attention_mask", mask))
    if mask_ndim is not None and mask_ndim >= 3:
        dense = rectangular("attention_mask", mask)  # tensors on any device too
        if dense.ndim == 4 and dense.shape[1] == 1:
            dense = dense[:, 0]
        if dense.shape != (*shape, shape[1]):
            raise ShapeError(
                f"attention_mask: expected shape (B, C) or (B, C, C) with (B, C) = {shape}, "
                f"got {shape_of('attention_mask', mask)}"
            )
        grids["attention_mask"] = None
    else:
        dense = None
        grids["attention_mask"] = _grid(batch, "attention_mask", shape)
    document_ids = _grid(batch, "document_ids", shape)
    if document_ids is None:
        if grids["position_ids"] is None:
            raise ConfigError("batch: needs 'document_ids' or 'position_ids' to find documents")
        document_ids = _derived_document_ids(grids["position_ids"], grids["attention_mask"])
    if dense is not None:
        violations += _dense_mask_violations(dense, document_ids)
    cu_seqlens = [
        (name, _integer_array(name, batch[name]).astype(np.int64))
        for name in _CU_SEQLENS_KEYS
        if batch.get(name) is not None
    ]
    max_seqlens = []
    for name in _MAX_SEQLEN_KEYS:
        if batch.get(name) is None:
            continue
        max_seqlen = integer(name, batch[name])
        if -(2**63) <= max_seqlen < 2**63:
            max_seqlens.append((name, max_seqlen))
        else:
            detail = f"{name} is {max_seqlen}, beyond int64 (no segment is that long)"
            violations.append(Violation("cu_seqlens", -1, -1, detail))
    starts = batch.get("document_starts")
    if starts is not None:
        starts = _integer_array("document_starts", starts, ndim=2).astype(np.int64, copy=False)
        if starts.shape[0] != shape[0]:
            raise ShapeError(f"document_starts: expected shape ({shape[0]}, S), got {starts.shape}")
    seq_lengths = batch.get("seq_lengths")
    if seq_lengths is not None:
        seq_lengths = _integer_array("seq_lengths", seq_lengths).astype(np.int64, copy=False)
    tokens = source_lengths = None
    if sequences is not None:
        tokens, source_lengths = _documents(sequences)
    found, total = _native.core().check_packing(
        input_ids,
        document_ids,
        grids["labels"],
        grids["position_ids"],
        grids["attention_mask"],
        cu_seqlens,
        max_seqlens,
        _grid(batch, "seq_idx", shape),
        starts,
        seq_lengths,
        tokens,
        source_lengths,
        capacity,
        pad_token_id,
        ignore_index,
        labels,
    )
    violations += [Violation(*v) for v in found]
    return PackingReport(total + len(violations) - len(found), violations[:1000])


def assert_valid_packing(
    batch: Mapping[str, Any],
    sequences: Any = None,
    capacity: int | None = None,
    pad_token_id: int = 0,
    ignore_index: int = -100,
    labels: str = "aligned",
) -> None:
    """Raise AssertionError listing the first violations when :func:`check_packing` fails."""
    __tracebackhide__ = True
    report = check_packing(batch, sequences, capacity, pad_token_id, ignore_index, labels)
    if not report.ok:
        raise AssertionError(str(report))


def position_ids_from_document_starts(document_starts: Any, seq_len: int) -> np.ndarray:
    """``(B, seq_len)`` position ids that restart at 0 at each start (-1 entries ignored).

    Positions before a row's first start count from 0 at position 0.
    """
    import numpy as np

    starts = _integer_array("document_starts", document_starts, ndim=2)
    seq_len = integer("seq_len", seq_len, low=0, high=_MAX_DIM)
    # At least one row: the positions 0..seq_len are built even for none.
    check_outputs_fit("seq_len", (max(starts.shape[0], 1), seq_len), 8, "lower seq_len")
    if ((starts < -1) | (starts >= seq_len)).any():
        raise ConfigError(f"document_starts: entries must be -1 or in [0, {seq_len})")
    is_start = np.zeros((starts.shape[0], seq_len), bool)
    rows, cols = np.nonzero(starts >= 0)
    is_start[rows, starts[rows, cols]] = True
    positions = np.arange(seq_len)
    last_start = np.maximum.accumulate(np.where(is_start, positions, 0), axis=1)
    return (positions - last_start).astype(np.int64)


def document_starts_from_position_ids(position_ids: Any) -> np.ndarray:
    """``(B, max_segments)`` starts (positions where the id is 0), padded with -1."""
    import numpy as np

    positions = _integer_array("position_ids", position_ids, ndim=2)
    is_start = positions == 0
    counts = is_start.sum(axis=1)
    out = np.full((positions.shape[0], int(counts.max(initial=0))), -1, np.int64)
    rows, cols = np.nonzero(is_start)
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    out[rows, rank] = cols
    return out


def cu_seqlens_from_position_ids(position_ids: Any, attention_mask: Any = None) -> np.ndarray:
    """int32 segment boundaries over the flattened batch: a segment starts at each position
    id 0 and at each row start; masked-out positions (``attention_mask == 0``) are excluded.
    """
    import numpy as np

    positions = _integer_array("position_ids", position_ids, ndim=2)
    mask = (
        None
        if attention_mask is None
        else _grid(
            {"attention_mask": attention_mask}, "attention_mask", positions.shape, "position_ids"
        )
    )
    ids = _derived_document_ids(positions, mask).ravel()
    ids = ids[ids >= 0]
    lengths = np.bincount(ids) if len(ids) else np.zeros(0, np.int64)
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


# A dense mask and the same-document comparison it is built from.
_DENSE_MASK_TEMPORARIES = 2
_DENSE_HINT = "a dense mask is B·C² bytes; pass cu_seqlens to varlen attention for long rows"


def block_attention_mask(document_ids: Any, causal: bool = True) -> Any:
    """``(B, C, C)`` bool: query and key in the same document (and key <= query when
    causal); false on padding (-1). Torch in, torch out.
    """
    import numpy as np

    as_torch = _torch.is_tensor(document_ids)
    ids = _integer_array("document_ids", document_ids, ndim=2)
    rows, width = ids.shape
    check_outputs_fit(
        "document_ids", (rows, width, width), 1, _DENSE_HINT, arrays=_DENSE_MASK_TEMPORARIES
    )
    same = (ids[:, :, None] == ids[:, None, :]) & (ids[:, :, None] != -1)
    if flag("causal", causal) and rows:  # no rows: the (C, C) triangle is not needed
        same &= np.tril(np.ones((ids.shape[1], ids.shape[1]), bool))
    if as_torch:
        import torch

        return torch.from_numpy(same)
    return same


def make_attention_mask(
    batch_size: int,
    seq_len: int,
    kind: str = "padding",
    *,
    lengths: Sequence[int] | None = None,
    seed: int = 0,
    ratio: float = 0.15,
) -> np.ndarray:
    """The usual test masks, deterministic for a seed.

    - ``"padding"``: int64 ``(B, L)``, 1 on the first ``lengths[b]`` positions (default:
      seeded lengths in [1, L]);
    - ``"causal"``: bool ``(B, L, L)`` lower triangle;
    - ``"block"``: bool ``(B, L, L)``, the causal block mask of documents of ``lengths``
      packed in order into each row (default: seeded lengths);
    - ``"random"``: int64 ``(B, L)`` with a fraction ``ratio`` of zeros, never a whole row.
    """
    import numpy as np

    from ferrofix import rng

    batch_size = integer("batch_size", batch_size, low=0)
    seq_len = integer("seq_len", seq_len, low=1)
    kind = choice("kind", kind, ("padding", "causal", "block", "random"))
    ratio = number("ratio", ratio, "a number in [0, 1)")
    if not 0 <= ratio < 1:
        raise ConfigError(f"ratio: must be a number in [0, 1), got {ratio!r}")
    if kind in ("causal", "block"):
        shape, itemsize = (batch_size, seq_len, seq_len), 1
        check_outputs_fit(
            "batch_size, seq_len", shape, itemsize, _DENSE_HINT, arrays=_DENSE_MASK_TEMPORARIES
        )
    else:
        # The int64 mask and the float64 or bool array it is computed from.
        check_outputs_fit("batch_size, seq_len", (batch_size, seq_len), 8, "lower them", arrays=2)
    if kind == "causal":
        if batch_size == 0:  # the (C, C) triangle below would be the only allocation
            return np.zeros((0, seq_len, seq_len), bool)
        lower = np.tril(np.ones((seq_len, seq_len), bool))
        return np.broadcast_to(lower, (batch_size, seq_len, seq_len)).copy()
    if kind == "random":
        keep = rng.uniform((batch_size, seq_len), seed, stream=3) >= ratio
        keep[:, 0] |= ~keep.any(axis=1)  # never mask a whole row
        return keep.astype(np.int64)
    if lengths is None:
        lengths = rng.integers(1, seq_len + 1, batch_size, seed, stream=1)
    else:
        lengths = np.array([integer("lengths", v, low=1, high=seq_len) for v in lengths], np.int64)
    if kind == "padding":
        if len(lengths) != batch_size:
            raise ShapeError(f"lengths: expected {batch_size} lengths, got {len(lengths)}")
        if batch_size == 0:  # arange(seq_len) would be the only allocation
            return np.zeros((0, seq_len), np.int64)
        return (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    documents = np.full((batch_size, seq_len), -1, np.int64)
    document, row, at = 0, 0, 0
    for length in itertools.cycle(lengths.tolist()):
        if row == batch_size:
            break
        take = min(length, seq_len - at)
        documents[row, at : at + take] = document
        document, at = document + 1, at + take
        if at == seq_len:
            row, at = row + 1, 0
    return block_attention_mask(documents, causal=True)


# --- what the fixtures build (ferrofix.fixtures.packing) ---------------------------------------


def sample_document_lengths(n: int, capacity: int, seed: int) -> np.ndarray:
    """Seeded lognormal lengths (median ~capacity/6, long right tail), clipped to
    [1, capacity]: the shape of real pretraining document lengths.
    """
    import numpy as np

    from ferrofix import rng

    n = integer("n", n, low=0)
    capacity = _capacity(capacity)
    # The two uniforms, the normals and the lengths: four float64 arrays of n.
    check_outputs_fit("n", (n,), 8, "ask for fewer lengths", arrays=4)
    u = rng.uniform((2, n), seed, stream=11)
    normal = np.sqrt(-2.0 * np.log1p(-u[0])) * np.cos(2.0 * math.pi * u[1])
    lengths = np.exp(math.log(capacity / 6) + 0.9 * normal)
    return np.clip(np.rint(lengths), 1, capacity).astype(np.int64)


class PackedExample(NamedTuple):
    """A packed batch with the documents it came from."""

    batch: dict[str, Any]
    sequences: list[list[int]]
    capacity: int


def packed_example(
    lengths: Sequence[int], capacity: int = 64, strategy: str = "bfd", seed: int = 0
) -> PackedExample:
    """Documents of ``lengths`` with token ids drawn in [1, 1000) from ferrofix's generator
    (so a seed fixes them), packed by ``pack_sequences`` (aligned labels)."""
    from ferrofix import rng

    lengths = [integer("lengths", v, low=0) for v in _integer_array("lengths", lengths).tolist()]
    # The tokens become Python ints in lists: about 64 bytes each.
    check_outputs_fit("lengths", (sum(lengths),), 64, "ask for shorter documents")
    tokens = rng.integers(1, 1000, sum(lengths), seed, stream=12).tolist()
    starts = itertools.accumulate(lengths, initial=0)
    sequences = [tokens[s : s + n] for s, n in zip(starts, lengths, strict=False)]
    batch = pack_sequences(sequences, capacity, strategy=strategy)
    return PackedExample(batch, sequences, capacity)
