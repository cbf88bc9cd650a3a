"""Packing: strategies against the quadratic reference, bounds, batches, and the checker."""

from __future__ import annotations

import numpy as np
import pytest
from ferrofix import packing, parallel
from ferrofix.errors import ConfigError, DtypeError, ShapeError
from ferrofix.packing import (
    STRATEGIES,
    block_attention_mask,
    check_packing,
    pack,
    pack_sequences,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import packing as reference
from tests.reference.memory import skip_if_it_fits

# --- pack ---------------------------------------------------------------------------------


def test_bfd_places_equal_lengths_in_input_order() -> None:
    result = pack([3, 2, 3], 10, "bfd")
    assert result.bins() == [[0, 2, 1]]
    assert result.offset_in_bin.tolist() == [0, 6, 3]
    batch = pack_sequences([[1, 1, 1], [2, 2], [3, 3, 3]], 10)
    assert batch["document_starts"].tolist() == [[0, 3, 6]]


def test_ffd_and_bfd_differ_where_best_fit_is_tighter() -> None:
    assert pack([8, 6, 3, 1], 10, "ffd").bins() == [[0, 3], [1, 2]]
    assert pack([8, 6, 3, 1], 10, "bfd").bins() == [[0], [1, 2, 3]]


def test_packing_arrays_and_summary() -> None:
    result = pack(np.array([5, 5, 5, 1], np.int32), 10, "next_fit")
    assert result.bin_of_item.dtype == np.int32
    assert result.offset_in_bin.dtype == np.int32
    assert result.bin_offsets.dtype == np.int64
    assert result.items.dtype == np.int32
    assert result.bins() == [[0, 1], [2, 3]]
    assert result.num_bins == 2
    assert result.fill == pytest.approx(16 / 20)
    assert (result.lower_bound_l1, result.lower_bound_l2, result.bins_over_l2) == (2, 2, 1.0)
    assert result.item_source.tolist() == [0, 1, 2, 3]


def test_empty_input_gives_no_bins() -> None:
    for strategy in STRATEGIES:
        result = pack([], 10, strategy)
        assert result.num_bins == 0
        assert result.bins() == []
        assert result.fill == 0.0
        assert len(result.bin_of_item) == 0
        assert result.bin_offsets.tolist() == [0]
        assert (result.lower_bound_l1, result.lower_bound_l2) == (0, 0)


def test_overflow_truncate_and_split() -> None:
    truncated = pack([3, 25], 10, overflow="truncate")
    assert truncated.item_lengths.tolist() == [3, 10]
    split = pack([3, 25], 10, overflow="split")
    assert split.item_lengths.tolist() == [3, 10, 10, 5]
    assert split.item_source.tolist() == [0, 1, 1, 1]
    assert split.item_offset.tolist() == [0, 0, 10, 20]
    assert split.num_bins == 4 - 1  # 10 | 10 | 5+3


lengths_and_capacity = st.integers(1, 60).flatmap(
    lambda c: st.tuples(st.lists(st.integers(1, c), max_size=60), st.just(c))
)


@settings(max_examples=80, deadline=None)
@given(lengths_and_capacity, st.sampled_from(STRATEGIES))
def test_every_strategy_matches_the_quadratic_reference(case, strategy) -> None:
    lengths, capacity = case
    result = pack(lengths, capacity, strategy)
    bins, offsets = reference.pack(lengths, capacity, strategy)
    assert result.bin_of_item.tolist() == bins
    assert result.offset_in_bin.tolist() == offsets
    # Every item exactly once, no bin over capacity, items laid out back to back.
    assert sorted(result.items.tolist()) == list(range(len(lengths)))
    for members in result.bins():
        starts = [offsets[i] for i in members]
        assert starts == sorted(starts)
        assert not starts or starts[0] == 0
        assert sum(lengths[i] for i in members) <= capacity
    assert result.lower_bound_l1 <= result.lower_bound_l2 <= max(result.num_bins, 0)
    assert result.lower_bound_l2 == reference.lower_bound_l2(lengths, capacity)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(1, 10**6), max_size=40),
    st.integers(10**6, 3 * 10**6),
    st.sampled_from(STRATEGIES),
)
def test_huge_capacities_use_the_sparse_index_and_stay_exact(lengths, capacity, strategy) -> None:
    bins, _offsets = reference.pack(lengths, capacity, strategy)
    assert pack(lengths, capacity, strategy).bin_of_item.tolist() == bins


def test_results_do_not_depend_on_the_thread_count() -> None:
    lengths = packing.sample_document_lengths(200_000, 4096, seed=3)
    results = []
    for threads in (1, 2, 3):
        parallel.set_num_threads(threads)
        try:
            results.append(pack(lengths, 4096, "bfd"))
        finally:
            parallel.set_num_threads(None)
    for other in results[1:]:
        assert np.array_equal(results[0].bin_of_item, other.bin_of_item)
        assert np.array_equal(results[0].items, other.items)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: pack([3, 0], 10),
            ConfigError,
            "lengths: every length must be >= 1, got 0 at index 1",
        ),
        # numpy reads [3, True] as [3, 1]: a bool among ints is refused by position.
        (lambda: pack([3, True], 10), DtypeError, "lengths[1]: must be an integer, got a bool"),
        (lambda: pack((3, np.True_), 10), DtypeError, "lengths[1]: must be an integer, got a bool"),
        (
            lambda: pack([3, -2], 10),
            ConfigError,
            "lengths: every length must be >= 1, got -2 at index 1",
        ),
        (
            lambda: pack([3, 12], 10),
            ConfigError,
            "lengths: length 12 at index 1 exceeds capacity 10; pass overflow='truncate' or "
            "overflow='split' to pack it",
        ),
        (
            lambda: pack([3], 0),
            ConfigError,
            "capacity: must be an integer in [1, 2**31 - 1], got 0",
        ),
        (
            lambda: pack([3], -5),
            ConfigError,
            "capacity: must be an integer in [1, 2**31 - 1], got -5",
        ),
        (lambda: pack([3], 2**31), ConfigError, "capacity: must be an integer in [1, 2**31 - 1]"),
        (
            lambda: pack([3], 10.0),
            ConfigError,
            "capacity: must be an integer in [1, 2**31 - 1], got 10.0",
        ),
        (
            lambda: pack([3], True),
            ConfigError,
            "capacity: must be an integer in [1, 2**31 - 1], got True",
        ),
        (
            lambda: pack([1.5, 2.0], 10),
            DtypeError,
            "lengths: must be an integer array (int32 or int64), got dtype float64",
        ),
        (
            lambda: pack([True, False], 10),
            DtypeError,
            "lengths: must be an integer array (int32 or int64), got dtype bool",
        ),
        (lambda: pack([[1, 2]], 10), ShapeError, "lengths: expected shape (N,), got (1, 2)"),
        (
            lambda: pack([3], 10, "best"),
            ConfigError,
            "strategy: must be one of 'next_fit', 'first_fit', 'best_fit', 'ffd', 'bfd', 'wfd', "
            "got 'best'",
        ),
        (
            lambda: pack([3], 10, overflow="drop"),
            ConfigError,
            "overflow: must be one of 'error', 'truncate', 'split', got 'drop'",
        ),
        # Splitting turns a few long lengths into many pieces: counted without overflow,
        # and refused past 2**31 - 1 pieces or the machine's memory (64 bytes a piece).
        (
            lambda: pack([2**63 - 1, 5], 4, overflow="split"),
            ConfigError,
            "lengths: splitting at capacity 4 gives 2305843009213693954 items; at most 2**31 - 1",
        ),
        pytest.param(
            lambda: pack([(2**31 - 1) * 8], 8, overflow="split"),
            ConfigError,
            "lengths: an output array of shape [2147483647] would need 128.0 GiB, more than this "
            "machine's memory",
            marks=skip_if_it_fits(128),
        ),
    ],
)
def test_pack_bad_inputs(call, error, message) -> None:
    with pytest.raises(error) as info:
        call()
    assert str(info.value).startswith(message)


# --- pack_sequences -------------------------------------------------------------------------

documents = st.lists(st.lists(st.integers(1, 50), min_size=1, max_size=20), max_size=25)


@settings(max_examples=60, deadline=None)
@given(documents, st.sampled_from(STRATEGIES), st.sampled_from(["aligned", "shifted"]))
def test_pack_sequences_matches_the_token_by_token_reference(sequences, strategy, labels) -> None:
    capacity = 20
    batch = pack_sequences(sequences, capacity, strategy, labels=labels, pad_token_id=99)
    result = pack([len(s) for s in sequences], capacity, strategy)
    expected = reference.packed_batch(
        sequences,
        result.bins(),
        result.offset_in_bin.tolist(),
        capacity,
        pad_token_id=99,
        labels=labels,
    )
    for key, value in expected.items():
        assert np.array_equal(batch[key], value), key
    assert batch["max_seqlen"] == max((len(s) for s in sequences), default=0)
    assert check_packing(batch, sequences, capacity, pad_token_id=99, labels=labels).ok


def test_pack_sequences_accepts_flat_ids_and_arrays_and_returns_tensors() -> None:
    torch = pytest.importorskip("torch")
    sequences = [[5, 6, 7], [8, 9]]
    flat = (np.array([5, 6, 7, 8, 9]), np.array([3, 2]))
    as_arrays = [np.array(s, np.int32) for s in sequences]
    reference_batch = pack_sequences(sequences, 8)
    for other in (pack_sequences(flat, 8), pack_sequences(as_arrays, 8)):
        assert all(np.array_equal(reference_batch[k], other[k]) for k in reference_batch)
    tensors = pack_sequences(sequences, 8, return_tensors="pt")
    assert tensors["input_ids"].dtype == torch.int64
    assert tensors["cu_seqlens"].dtype == torch.int32
    assert check_packing(tensors, sequences, 8).ok


def _big_documents(seed: int) -> list[np.ndarray]:
    """~200k tokens: a batch whose grids come from the buffer pool."""
    gen = np.random.default_rng(seed)
    return [gen.integers(1, 1000, int(n)) for n in gen.integers(1, 500, 700)]


def test_pooled_batches_are_never_handed_out_while_viewed() -> None:
    from ferrofix import _native

    packing.release_batch_buffers()
    batch = pack_sequences(_big_documents(0), 512)
    assert batch["input_ids"].nbytes > 1 << 20
    kept = {key: batch[key][3:] for key in ("input_ids", "labels", "position_ids")}
    kept["document_ids"] = batch["document_ids"].T
    want = {key: value.copy() for key, value in kept.items()}
    del batch
    for seed in (1, 2, 3):  # more grids than the pool holds
        other = pack_sequences(_big_documents(seed), 512)
        for key, value in kept.items():
            assert not any(np.shares_memory(value, other[k]) for k in other), key
    for key, value in kept.items():
        np.testing.assert_array_equal(value, want[key])
    del kept, other
    assert _native.core().idle_packed_batch_bytes() >= 5 << 20  # five grids of over 1 MiB


def test_large_pooled_arrays_start_on_a_huge_page_boundary() -> None:
    """Grids from 4 MB start on a 2 MiB boundary (so every page of them can be a huge
    page), fresh or reused, and still hold the right values."""
    packing.release_batch_buffers()
    gen = np.random.default_rng(6)
    sequences = [gen.integers(1, 1000, int(n)) for n in gen.integers(1, 2000, 1200)]
    packed = pack([len(s) for s in sequences], 2048)
    expected = reference.packed_batch(
        [s.tolist() for s in sequences], packed.bins(), packed.offset_in_bin.tolist(), 2048
    )
    for _ in range(2):  # fresh buffers, then the same ones again
        batch = pack_sequences(sequences, 2048)
        large = [key for key in expected if batch[key].nbytes >= 4 << 20]
        assert {"input_ids", "labels", "position_ids"} <= set(large)
        for key in large:
            assert batch[key].__array_interface__["data"][0] % (2 << 20) == 0, key
        for key, value in expected.items():
            np.testing.assert_array_equal(batch[key], value, err_msg=key)
        del batch


@pytest.mark.parametrize("labels", ["aligned", "shifted"])
def test_reused_batch_memory_holds_only_the_new_batch(labels) -> None:
    """A pooled grid still holds the previous batch's values: every cell is rewritten,
    padding included, whatever the pad id, ignore index and label convention."""
    from ferrofix import _native

    packing.release_batch_buffers()
    first = pack_sequences(_big_documents(4), 512, pad_token_id=7, ignore_index=-1)
    addresses = {first[k].__array_interface__["data"][0] for k in ("input_ids", "labels")}
    del first
    sequences = _big_documents(5)
    batch = pack_sequences(sequences, 512, "ffd", pad_token_id=3, labels=labels)
    assert addresses & {batch[k].__array_interface__["data"][0] for k in batch if k != "max_seqlen"}
    result = pack([len(s) for s in sequences], 512, "ffd")
    expected = reference.packed_batch(
        [s.tolist() for s in sequences],
        result.bins(),
        result.offset_in_bin.tolist(),
        512,
        pad_token_id=3,
        labels=labels,
    )
    for key, value in expected.items():
        np.testing.assert_array_equal(batch[key], value, err_msg=key)
    assert _native.core().idle_packed_batch_bytes() == 0  # all five grids are in use
    nbytes = batch["input_ids"].nbytes
    del batch
    assert packing.release_batch_buffers() >= 5 * nbytes


def test_split_documents_are_chunks_that_restart_positions() -> None:
    sequences = [list(range(1, 12)), [20, 21]]
    batch = pack_sequences(sequences, 4, overflow="split")
    assert batch["cu_seqlens"].tolist() == [0, 4, 8, 11, 13]
    assert check_packing(batch, sequences, 4).ok
    truncated = pack_sequences(sequences, 4, overflow="truncate")
    assert truncated["seq_lengths"].tolist() == [4, 2]
    assert truncated["input_ids"][0].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: pack_sequences([[1], []], 4),
            ConfigError,
            "lengths: every length must be >= 1, got 0 at index 1",
        ),
        (
            lambda: pack_sequences([[1, 2], [3, True]], 4),
            DtypeError,
            "sequences[1][1]: must be an integer, got a bool",
        ),
        (
            lambda: pack_sequences([[1, 2], np.array([3]), (4, False)], 4),
            DtypeError,
            "sequences[2][1]: must be an integer, got a bool",
        ),
        (
            lambda: pack_sequences(([1, True], [2]), 4),
            DtypeError,
            "sequences[1]: must be an integer, got a bool",
        ),
        (lambda: pack_sequences([[1.5]], 4), DtypeError, "sequences: tokens must be integers"),
        (
            lambda: pack_sequences("abc", 4),
            ConfigError,
            "sequences: must be a list of token sequences",
        ),
        (
            lambda: pack_sequences(([1, 2], [1]), 4),
            ConfigError,
            "lengths: must sum to the number of tokens (2), got a sum of 1",
        ),
        (
            lambda: pack_sequences([[1]], 4, labels="next"),
            ConfigError,
            "labels: must be one of 'aligned', 'shifted', got 'next'",
        ),
        (
            lambda: pack_sequences([[1]], 4, return_tensors="tf"),
            ConfigError,
            "return_tensors: must be one of 'np', 'pt', got 'tf'",
        ),
        (
            lambda: pack_sequences([[1]], 4, pad_token_id="0"),
            ConfigError,
            "pad_token_id: must be an integer in [-2**63, 2**63 - 1], got '0'",
        ),
        (
            lambda: pack_sequences([[1]], 4, ignore_index=-(2**70)),
            ConfigError,
            "ignore_index: must be an integer in [-2**63, 2**63 - 1], got -1180591620717411303424",
        ),
        # One row of 2**31 - 1 int64 tokens is 16 GiB per array, 80 GiB for the five: refused
        # before anything is allocated (the test skips on machines with that much memory).
        pytest.param(
            lambda: pack_sequences([[1, 2]], 2**31 - 1),
            ConfigError,
            "capacity: 5 output arrays of shape [1, 2147483647] would need 80.0 GiB, more than "
            "this machine's memory",
            marks=skip_if_it_fits(80),
        ),
    ],
)
def test_pack_sequences_bad_inputs(call, error, message) -> None:
    with pytest.raises(error) as info:
        call()
    assert str(info.value).startswith(message)


# --- check_packing: one planted bug, one kind ----------------------------------------------


def _segment_ordinals(batch: dict) -> np.ndarray:
    """Hugging Face's seq_idx for a batch: each token's segment ordinal over the flattened
    batch (from cu_seqlens), -1 on padding."""
    cu = np.asarray(batch["cu_seqlens"])
    ordinals = np.full(batch["input_ids"].shape, -1, np.int64)
    ordinals[batch["attention_mask"] == 1] = np.repeat(np.arange(len(cu) - 1), np.diff(cu))
    return ordinals


def _copy(batch: dict) -> dict:
    return {k: v.copy() if hasattr(v, "copy") else v for k, v in batch.items()}


def _row_with(batch: dict, *, segments: int = 1, padding: bool = False) -> int:
    for row, starts in enumerate(batch["document_starts"]):
        has_padding = batch["attention_mask"][row].min() == 0
        if (starts >= 0).sum() >= segments and (has_padding or not padding):
            return row
    raise AssertionError("the fixture batch has no such row")


def _plant(kind: str, batch: dict, sequences: list[list[int]]) -> tuple[dict, list, int | None]:
    """A copy of a valid batch (and sources, capacity) with exactly one kind of bug."""
    batch, sequences, capacity = _copy(batch), [list(s) for s in sequences], None
    row = _row_with(batch, segments=3, padding=True)
    start = int(batch["document_starts"][row, 1])  # a segment start, not the row's first
    doc = int(batch["document_ids"][row, start])
    pad = int(batch["seq_lengths"][row])  # first padding position of the row
    if kind == "over_capacity":
        capacity = int(batch["seq_lengths"].max()) - 1
    elif kind == "token_lost":
        sequences[doc].append(7)
    elif kind == "token_duplicated":
        sequences[doc].pop()
    elif kind == "token_reordered":
        sequences[doc][0], sequences[doc][1] = sequences[doc][1], sequences[doc][0] + 1000
    elif kind == "position_ids":
        batch["position_ids"][row, start + 1] += 1
    elif kind == "document_ids":
        bounds = [int(v) for v in batch["document_starts"][row] if v >= 0]
        bounds.append(int(batch["seq_lengths"][row]))
        batch["document_ids"][row, bounds[2] : bounds[3]] = batch["document_ids"][row, 0]
        sequences = None  # the token check would also see the relabelled segment
    elif kind == "cu_seqlens":
        batch["cu_seqlens"][1] += 1
    elif kind == "seq_idx":
        batch["seq_idx"] = _segment_ordinals(batch)
        batch["seq_idx"][row, start + 1] += 1
    elif kind == "document_starts":
        batch["document_starts"][row, 1] += 1
    elif kind == "seq_lengths":
        batch["seq_lengths"][row] += 1
    elif kind == "label_crosses_boundary":
        batch["labels"][row, start] = batch["input_ids"][row, start]
    elif kind == "label_mismatch":
        batch["labels"][row, start + 1] += 1
    elif kind == "label_not_ignored_on_padding":
        batch["labels"][row, pad] = 3
    elif kind == "attention_mask":
        batch["attention_mask"][row, start] = 0
    elif kind == "pad_token":
        batch["input_ids"][row, pad] = 3
    else:
        raise AssertionError(kind)
    return batch, sequences, capacity


KINDS = [
    "over_capacity",
    "token_lost",
    "token_duplicated",
    "token_reordered",
    "position_ids",
    "document_ids",
    "cu_seqlens",
    "seq_idx",
    "document_starts",
    "seq_lengths",
    "label_crosses_boundary",
    "label_mismatch",
    "label_not_ignored_on_padding",
    "attention_mask",
    "pad_token",
]


def test_the_fixture_batch_is_valid(packed_batch) -> None:
    report = check_packing(packed_batch.batch, packed_batch.sequences, packed_batch.capacity)
    assert report.ok
    assert report.num_violations == 0
    assert str(report) == "packed batch is valid"


@pytest.mark.parametrize(
    ("max_seqlen", "detail"),
    [
        (3, "max_seqlen is 3, the longest segment has"),
        (np.int64(-1), "max_seqlen is -1, the longest segment has"),
        (2**70, "max_seqlen is 1180591620717411303424, beyond int64"),
    ],
)
def test_a_wrong_max_seqlen_is_reported_not_raised(max_seqlen, detail, packed_batch) -> None:
    batch = {**packed_batch.batch, "max_seqlen": max_seqlen}
    report = check_packing(batch, packed_batch.sequences, packed_batch.capacity)
    assert [v.kind for v in report.violations] == ["cu_seqlens"], str(report)
    assert report.violations[0].detail.startswith(detail)
    with pytest.raises(ConfigError, match="max_seqlen: must be an integer, got 'x'"):
        check_packing({**packed_batch.batch, "max_seqlen": "x"})


@pytest.mark.parametrize("kind", KINDS)
def test_each_planted_bug_is_reported_as_its_kind_alone(kind, packed_batch) -> None:
    batch, sequences, capacity = _plant(kind, packed_batch.batch, packed_batch.sequences)
    report = check_packing(batch, sequences, capacity)
    assert not report.ok
    assert report.kinds() == {kind}, str(report)
    # One violation, except that every full row is over a capacity one below the fullest.
    expected = 1 if capacity is None else int((batch["seq_lengths"] > capacity).sum())
    assert report.num_violations == expected, str(report)


def _flattened_by_hugging_face(documents: list[list[int]]) -> dict:
    transformers = pytest.importorskip("transformers")
    try:
        collator = transformers.DataCollatorWithFlattening(
            return_flash_attn_kwargs=True, return_seq_idx=True
        )
    except TypeError:  # the flash-attention keys came after transformers 4.49
        pytest.skip(f"transformers {transformers.__version__} cannot return these keys")
    return dict(collator([{"input_ids": d} for d in documents], return_tensors="np"))


HF_DOCUMENTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14]]


def test_hugging_face_flattening_matches_one_packed_row_and_passes_the_check() -> None:
    hf = _flattened_by_hugging_face(HF_DOCUMENTS)
    total = sum(map(len, HF_DOCUMENTS))
    ours = pack_sequences(HF_DOCUMENTS, total, strategy="next_fit")
    for key in ("input_ids", "labels", "position_ids"):
        assert np.array_equal(ours[key], hf[key]), key
    for key in ("cu_seq_lens_q", "cu_seq_lens_k"):
        assert np.array_equal(ours["cu_seqlens"], hf[key]), key
    assert ours["max_seqlen"] == hf["max_length_q"] == hf["max_length_k"]
    assert np.array_equal(_segment_ordinals(ours), hf["seq_idx"])
    report = check_packing(hf, HF_DOCUMENTS)
    assert report.ok, str(report)


@pytest.mark.parametrize(
    ("key", "plant", "kind", "detail"),
    [
        ("cu_seq_lens_q", lambda v: v.__setitem__(1, 2), "cu_seqlens", "cu_seq_lens_q[1] is 2"),
        ("cu_seq_lens_k", lambda v: v.__setitem__(2, 6), "cu_seqlens", "cu_seq_lens_k[2] is 6"),
        ("max_length_k", lambda v: v + 1, "cu_seqlens", "max_length_k is 5, the longest"),
        ("seq_idx", lambda v: v.__setitem__((0, 3), 0), "seq_idx", "seq_idx is 0, expected 1"),
    ],
)
def test_hugging_face_flash_attention_keys_are_checked(key, plant, kind, detail) -> None:
    """A flattened batch's varlen keys under Hugging Face's names: each planted bug is
    reported once, naming the key (they were ignored, the batch judged valid)."""
    batch = _flattened_by_hugging_face(HF_DOCUMENTS)
    value = batch[key].copy() if hasattr(batch[key], "copy") else batch[key]
    planted = plant(value)
    batch[key] = value if planted is None else planted
    report = check_packing(batch, HF_DOCUMENTS)
    assert [v.kind for v in report.violations] == [kind], str(report)
    assert report.violations[0].detail.startswith(detail), str(report)


def test_a_document_missing_from_the_batch_is_lost(packed_batch) -> None:
    """Every segment in the batch is intact; one source document has none."""
    sequences = [list(s) for s in packed_batch.sequences]
    missing = len(sequences) // 2
    kept = sequences[:missing] + sequences[missing + 1 :]
    batch = pack_sequences(kept, packed_batch.capacity)
    batch["document_ids"][batch["document_ids"] >= missing] += 1  # renumber to the sources
    report = check_packing(batch, sequences, packed_batch.capacity)
    assert [(v.kind, v.row, v.position) for v in report.violations] == [("token_lost", -1, -1)]
    assert report.violations[0].detail == (
        f"document {missing} ({len(sequences[missing])} tokens) is missing"
    ), str(report)


def test_a_document_packed_twice_in_full_is_duplicated(packed_batch) -> None:
    """Both copies are the whole document token for token, in different rows."""
    sequences = [list(s) for s in packed_batch.sequences]
    twice = 0
    batch = pack_sequences([*sequences, sequences[twice]], packed_batch.capacity)
    copy = batch["document_ids"] == len(sequences)
    rows_of_copies = {*np.nonzero(copy)[0], *np.nonzero(batch["document_ids"] == twice)[0]}
    assert len(rows_of_copies) == 2  # else the row check also sees a split document
    batch["document_ids"][copy] = twice
    report = check_packing(batch, sequences, packed_batch.capacity)
    assert report.kinds() == {"token_duplicated"}, str(report)
    assert report.num_violations == 1
    length = len(sequences[twice])
    assert report.violations[0].detail == (
        f"document {twice} has {2 * length} tokens in the batch, the source has {length}"
    )


CHANGEABLE = ["input_ids", "labels", "position_ids", "document_ids", "attention_mask"]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from(["aligned", "shifted"]),
    st.booleans(),
    st.sets(st.sampled_from(["labels", "position_ids", "attention_mask"])),
    st.sampled_from(CHANGEABLE),
    st.sampled_from([-3, -2, -1, 1, 2, 3]),
)
def test_any_changed_entry_of_a_valid_batch_is_found(
    seed, labels, with_sources, dropped, target, delta
) -> None:
    """Documents long enough to cross the checker's strips; optional arrays left out at
    random. Every entry the conventions pin down, changed, must make the batch invalid."""
    gen = np.random.default_rng(seed)
    sequences = [gen.integers(1, 50_000, n) for n in gen.integers(1, 700, gen.integers(1, 12))]
    capacity = 1024
    batch = pack_sequences(sequences, capacity, labels=labels)
    batch = {key: value for key, value in batch.items() if key not in dropped}
    sources = sequences if with_sources else None
    assert check_packing(batch, sources, capacity, labels=labels).ok
    pinned = np.ones(batch["input_ids"].shape, bool)
    padding = batch["document_ids"] == -1
    if target == "position_ids":
        pinned = ~padding  # position ids on padding are free
    if not with_sources and target == "input_ids":
        pinned = padding  # without sources, a first token's value is free
    if target in dropped or (not with_sources and target == "document_ids") or not pinned.any():
        return
    rows, columns = np.nonzero(pinned)
    pick = gen.integers(len(rows))
    changed = batch[target].copy()
    changed[rows[pick], columns[pick]] += delta
    report = check_packing({**batch, target: changed}, sources, capacity, labels=labels)
    assert not report.ok, (target, rows[pick], columns[pick])


def test_dense_masks_are_checked(packed_batch) -> None:
    batch = _copy(packed_batch.batch)
    batch["attention_mask"] = block_attention_mask(batch["document_ids"])
    assert check_packing(batch, packed_batch.sequences).ok
    batch["attention_mask"][0, 5, 2] = ~batch["attention_mask"][0, 5, 2]
    report = check_packing(batch, packed_batch.sequences)
    assert report.kinds() == {"attention_mask"}
    assert report.violations[0][:3] == (
        "attention_mask",
        0,
        5,
    )


def test_a_flattened_batch_without_document_ids_is_checked_from_position_ids() -> None:
    sequences = [[5, 6, 7], [8, 9]]
    batch = {
        "input_ids": np.array([[5, 6, 7, 8, 9]]),
        "labels": np.array([[-100, 6, 7, -100, 9]]),
        "position_ids": np.array([[0, 1, 2, 0, 1]]),
    }
    assert check_packing(batch, sequences).ok
    batch["labels"][0, 3] = 8
    assert check_packing(batch, sequences).kinds() == {"label_crosses_boundary"}


def test_a_bool_attention_mask_is_checked_like_an_integer_one(packed_batch) -> None:
    batch = _copy(packed_batch.batch)
    batch["attention_mask"] = batch["attention_mask"].astype(bool)
    assert check_packing(batch, packed_batch.sequences).ok
    batch["attention_mask"][0, 0] = False
    report = check_packing(batch, packed_batch.sequences)
    assert [v.kind for v in report.violations] == ["attention_mask"]


CHECKED_KEYS = [
    "input_ids",
    "labels",
    "position_ids",
    "document_ids",
    "attention_mask",
    "cu_seqlens",
    "seq_lengths",
    "document_starts",
    "max_seqlen",
]


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 20), min_size=1, max_size=12),
    capacity=st.integers(4, 24),
    strategy=st.sampled_from(["bfd", "ffd", "next_fit", "first_fit", "best_fit", "wfd"]),
    overflow=st.sampled_from(["split", "truncate"]),
    labels=st.sampled_from(["aligned", "shifted"]),
    seed=st.integers(0, 2**32 - 1),
    key=st.sampled_from(CHECKED_KEYS),
    delta=st.sampled_from([-3, -2, -1, 1, 2, 3]),
)
def test_every_single_value_changed_in_a_valid_batch_is_found(
    lengths, capacity, strategy, overflow, labels, seed, key, delta
) -> None:
    """Mutation testing of the checker: a batch pack_sequences built passes; moving any one
    value of any array it checks by a small step is reported. (Position ids on padding are
    the one documented exception.)"""
    gen = np.random.default_rng(seed)
    documents = [gen.integers(1, 1000, n).tolist() for n in lengths]
    batch = packing.pack_sequences(
        documents, capacity, strategy=strategy, overflow=overflow, labels=labels
    )
    sources = documents if overflow == "split" else [d[:capacity] for d in documents]
    assert packing.check_packing(batch, sources, capacity, labels=labels).ok
    broken = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in batch.items()}
    if key == "max_seqlen":
        broken[key] += delta
    else:
        array = broken[key]
        at = tuple(int(gen.integers(0, n)) for n in array.shape)
        if key == "position_ids" and batch["document_ids"][at] == -1:
            return
        array[at] += delta
    report = packing.check_packing(broken, sources, capacity, labels=labels)
    assert not report.ok, (key, delta)


def test_assert_valid_packing_lists_the_violations(packed_batch) -> None:
    packing.assert_valid_packing(packed_batch.batch, packed_batch.sequences)
    batch = _copy(packed_batch.batch)
    batch["labels"][:, :] = 1
    with pytest.raises(AssertionError) as info:
        packing.assert_valid_packing(batch)
    text = str(info.value)
    assert text.startswith("packed batch has ")
    assert "label_" in text
    assert "... and " in text


@pytest.mark.parametrize(
    ("batch", "error", "message"),
    [
        ({}, ConfigError, "batch: must contain 'input_ids'"),
        (
            {"input_ids": np.zeros(4, np.int64)},
            ShapeError,
            "input_ids: expected shape (B, C), got (4,)",
        ),
        (
            {"input_ids": np.zeros((2, 4), np.int64)},
            ConfigError,
            "batch: needs 'document_ids' or 'position_ids'",
        ),
        (
            {"input_ids": np.zeros((2, 4), np.int64), "document_ids": np.zeros((2, 3), np.int64)},
            ShapeError,
            "document_ids: expected shape (2, 4) like input_ids, got (2, 3)",
        ),
        (
            {"input_ids": np.zeros((2, 4)), "position_ids": np.zeros((2, 4), np.int64)},
            DtypeError,
            "input_ids: must be an integer array",
        ),
        ([], DtypeError, "batch: expected a dict of arrays or tensors (as pack_sequences"),
        (
            {"input_ids": [[1, 2], [3]], "position_ids": [[0, 1], [0]]},
            ShapeError,
            "input_ids: expected an array; got nested sequences of different lengths",
        ),
        # Only the attention mask may be bool; bool ids or labels are a bug to report.
        (
            {"input_ids": np.ones((2, 4), bool), "position_ids": np.zeros((2, 4), np.int64)},
            DtypeError,
            "input_ids: must be an integer array (int32 or int64), got dtype bool",
        ),
        (
            {
                "input_ids": np.zeros((2, 4), np.int64),
                "position_ids": np.zeros((2, 4), np.int64),
                "labels": np.zeros((2, 4), bool),
            },
            DtypeError,
            "labels: must be an integer array (int32 or int64), got dtype bool",
        ),
        (
            {
                "input_ids": np.zeros((1, 4), np.int64),
                "position_ids": np.zeros((1, 4), np.int64),
                "seq_idx": np.zeros((1, 3), np.int32),
            },
            ShapeError,
            "seq_idx: expected shape (1, 4) like input_ids, got (1, 3)",
        ),
        (
            {
                "input_ids": np.zeros((1, 4), np.int64),
                "position_ids": np.zeros((1, 4), np.int64),
                "cu_seq_lens_q": np.array([0.0, 4.0]),
            },
            DtypeError,
            "cu_seq_lens_q: must be an integer array",
        ),
        (
            {
                "input_ids": np.zeros((1, 4), np.int64),
                "position_ids": np.zeros((1, 4), np.int64),
                "max_length_k": 4.5,
            },
            ConfigError,
            "max_length_k: must be an integer, got 4.5",
        ),
    ],
)
def test_check_packing_bad_inputs(batch, error, message) -> None:
    with pytest.raises(error) as info:
        check_packing(batch)
    assert str(info.value).startswith(message)


# --- converters and masks --------------------------------------------------------------------


def test_converters_round_trip(packed_batch) -> None:
    batch = packed_batch.batch
    starts = packing.document_starts_from_position_ids(
        np.where(batch["attention_mask"] == 1, batch["position_ids"], 1)
    )
    assert np.array_equal(starts, batch["document_starts"])
    positions = packing.position_ids_from_document_starts(
        batch["document_starts"], packed_batch.capacity
    )
    tokens = batch["attention_mask"] == 1
    assert np.array_equal(positions[tokens], batch["position_ids"][tokens])
    cu = packing.cu_seqlens_from_position_ids(batch["position_ids"], batch["attention_mask"])
    assert np.array_equal(cu, batch["cu_seqlens"])


def test_converters_take_empty_batches() -> None:
    none = np.zeros((0, 5), np.int64)
    assert packing.position_ids_from_document_starts(none, 3).shape == (0, 3)
    assert packing.document_starts_from_position_ids(none).shape == (0, 0)
    assert packing.cu_seqlens_from_position_ids(none).tolist() == [0]
    assert packing.cu_seqlens_from_position_ids(np.zeros((2, 0), np.int64)).tolist() == [0]


def test_block_mask_by_hand() -> None:
    mask = block_attention_mask(np.array([[0, 0, 1, -1]]))
    assert mask[0].astype(int).tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    full = block_attention_mask(np.array([[0, 0, 1, -1]]), causal=False)
    assert full[0, 0].astype(int).tolist() == [1, 1, 0, 0]


def test_make_attention_mask_kinds() -> None:
    padding = packing.make_attention_mask(2, 5, "padding", lengths=[2, 5])
    assert padding.tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    causal = packing.make_attention_mask(2, 3, "causal")
    assert causal.shape == (2, 3, 3)
    assert causal[1].astype(int).tolist() == [
        [1, 0, 0],
        [1, 1, 0],
        [1, 1, 1],
    ]
    block = packing.make_attention_mask(1, 4, "block", lengths=[3])
    assert block[0, 3].astype(int).tolist() == [0, 0, 0, 1]
    random = packing.make_attention_mask(64, 32, "random", seed=5, ratio=0.25)
    assert np.array_equal(random, packing.make_attention_mask(64, 32, "random", seed=5, ratio=0.25))
    assert 0.15 < 1 - random.mean() < 0.35
    assert random.any(axis=1).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: packing.make_attention_mask(2, 4, "diagonal"),
            "kind: must be one of 'padding', 'causal', 'block', 'random', got 'diagonal'",
        ),
        (lambda: packing.make_attention_mask(2, 0), "seq_len: must be an integer >= 1, got 0"),
        (
            lambda: packing.make_attention_mask(2, 4, ratio=1.0),
            "ratio: must be a number in [0, 1), got 1.0",
        ),
        (
            lambda: packing.make_attention_mask(2, 4, lengths=[5, 1]),
            "lengths: must be an integer in [1, 4], got 5",
        ),
        (
            lambda: packing.position_ids_from_document_starts([[0, 9]], 4),
            "document_starts: entries must be -1 or in [0, 4)",
        ),
        # Sizes past any machine's memory: refused before numpy or the generator allocates.
        (
            lambda: packing.position_ids_from_document_starts([[0]], 2**40),
            "seq_len: an output array of shape [1, 1099511627776] would need 8192.0 GiB",
        ),
        (
            lambda: packing.position_ids_from_document_starts(np.zeros((0, 1), np.int64), 2**62),
            "seq_len: an output array of shape [1, 4611686018427387904] would need more than",
        ),
        (
            lambda: packing.position_ids_from_document_starts([[0]], 2**64),
            "seq_len: must be an integer in [0, 2**63 - 1], got 18446744073709551616",
        ),
        (
            lambda: packing.make_attention_mask(2**20, 2**20, "causal"),
            "batch_size, seq_len: 2 output arrays of shape [1048576, 1048576, 1048576] would "
            "need 2147483648.0 GiB",
        ),
        (
            lambda: packing.make_attention_mask(2**40, 2**20, "random"),
            "batch_size, seq_len: 2 output arrays of shape [1099511627776, 1048576] would need "
            "more than 2**64 bytes",
        ),
        (
            lambda: packing.make_attention_mask(2**38, 1),
            "batch_size, seq_len: 2 output arrays of shape [274877906944, 1] would need 4096.0 GiB",
        ),
        (
            lambda: packing.block_attention_mask(np.zeros((1, 2**20), np.int64)),
            "document_ids: 2 output arrays of shape [1, 1048576, 1048576] would need 2048.0 GiB",
        ),
        (
            lambda: packing.sample_document_lengths(2**40, 512, seed=0),
            "n: 4 output arrays of shape [1099511627776] would need 32768.0 GiB",
        ),
        (
            lambda: packing.sample_document_lengths(5, 0, seed=0),
            "capacity: must be an integer in [1, 2**31 - 1], got 0",
        ),
        # An empty mask of a width numpy cannot shape, even empty (C² past 2**63 bytes).
        (
            lambda: packing.make_attention_mask(0, 2**40, kind="causal"),
            "batch_size, seq_len: numpy cannot shape an array as "
            "[0, 1099511627776, 1099511627776] (its nonzero dimensions span more than "
            "2**63 bytes), even empty",
        ),
    ],
)
def test_mask_and_converter_bad_inputs(call, message) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: packing.document_starts_from_position_ids(np.array([[0.0, 1.0]])),
            DtypeError,
            "position_ids: must be an integer array (int32 or int64), got dtype float64",
        ),
        (
            lambda: packing.document_starts_from_position_ids(np.array([[True, False]])),
            DtypeError,
            "position_ids: must be an integer array (int32 or int64), got dtype bool",
        ),
        (
            lambda: packing.document_starts_from_position_ids([0, 1, 0]),
            ShapeError,
            "position_ids: expected shape (B, C), got (3,)",
        ),
        (
            lambda: packing.cu_seqlens_from_position_ids(np.zeros((1, 2, 3), np.int64)),
            ShapeError,
            "position_ids: expected shape (B, C), got (1, 2, 3)",
        ),
        (
            lambda: packing.cu_seqlens_from_position_ids(None),
            DtypeError,
            "position_ids: must be an integer array (int32 or int64), got dtype object",
        ),
        (
            lambda: packing.cu_seqlens_from_position_ids([[0, 1, 0, 1]], [[1, 1, 1]]),
            ShapeError,
            "attention_mask: expected shape (1, 4) like position_ids, got (1, 3)",
        ),
        (
            lambda: packing.cu_seqlens_from_position_ids([[0, 1]], [[1.0, 1.0]]),
            DtypeError,
            "attention_mask: must be an integer array",
        ),
    ],
)
def test_position_id_converter_bad_inputs(call, error, message) -> None:
    with pytest.raises(error) as info:
        call()
    assert str(info.value).startswith(message)


# --- fixtures ----------------------------------------------------------------------------------


def test_document_lengths_fixture(document_lengths) -> None:
    assert document_lengths.shape == (1000,)
    assert document_lengths.dtype == np.int64
    assert document_lengths.min() >= 1
    assert document_lengths.max() <= 512
    assert 40 < np.median(document_lengths) < 130  # lognormal around 512 / 6
    assert pack(document_lengths, 512).fill > 0.9


@pytest.mark.parametrize(
    ("lengths", "error", "message"),
    [
        (None, DtypeError, "lengths: must be an integer array"),
        ("abc", DtypeError, "lengths: must be an integer array"),
        ([3, -1], ConfigError, "lengths: must be an integer >= 0, got -1"),
        ([2**40], ConfigError, "lengths: an output array of shape [1099511627776] would need"),
    ],
)
def test_make_packed_batch_bad_lengths(make_packed_batch, lengths, error, message) -> None:
    with pytest.raises(error) as info:
        make_packed_batch(lengths, capacity=16)
    assert str(info.value).startswith(message)


def test_make_packed_batch_fixture(make_packed_batch) -> None:
    example = make_packed_batch([5, 9, 3], capacity=16, strategy="ffd", seed=4)
    assert example.capacity == 16
    assert [len(s) for s in example.sequences] == [5, 9, 3]
    assert check_packing(example.batch, example.sequences, 16).ok
    again = make_packed_batch([5, 9, 3], capacity=16, strategy="ffd", seed=4)
    assert example.sequences == again.sequences
