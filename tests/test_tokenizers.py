"""Tokenizers: ids by hand, the HF-style surface, round trips, BPE against the slow reference,
persistence, fixtures and the bad-input table. HF parity lives in test_tokenizers_hf.py."""

from __future__ import annotations

import copy
import itertools
import pickle
import sys
import threading

import numpy as np
import pytest
import torch
from ferrofix import errors, parallel
from ferrofix._tokenizer_rows import kept_lengths, window_ranges
from ferrofix.mixins import TokenizerContract
from ferrofix.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    SimpleTokenizer,
    Tokenizer,
    fixture_corpus,
    fixture_tokenizer,
    load_tokenizer,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference import tokenizers as reference

WORDS = [str(i) for i in range(50)]


# --- ids by hand ----------------------------------------------------------------------------


def test_simple_tokenizer_ids_follow_the_seven_specials(simple_tokenizer) -> None:
    t = simple_tokenizer
    assert (t.vocab_size, t.full_vocab_size, len(t)) == (57, 57, 57)
    roles = ["pad", "cls", "mask", "eos", "bos", "sep", "unk"]
    assert [getattr(t, f"{r}_token_id") for r in roles] == list(range(7))
    assert [getattr(t, f"{r}_token") for r in roles] == [
        "[PAD]",
        "[CLS]",
        "[MASK]",
        "[EOS]",
        "[BOS]",
        "[SEP]",
        "[UNK]",
    ]
    assert t.encode("0 1  49") == [7, 8, 56]
    assert t.encode("   ") == []
    assert t.tokenize(" 3\t4\n") == ["3", "4"]
    assert t.encode("1[MASK]2 [SEP]") == [8, 2, 9, 5]
    assert t.get_vocab()["49"] == 56
    assert t.convert_tokens_to_ids(["[PAD]", "0"]) == [0, 7]
    assert t.convert_tokens_to_ids(None) is None  # as HF's does
    assert t._convert_token_to_id("10") == 17
    assert t.convert_ids_to_tokens(17) == "10"
    assert t.convert_ids_to_tokens([1, 7], skip_special_tokens=True) == ["0"]


def test_unknown_words_raise_or_fall_back() -> None:
    strict = SimpleTokenizer(WORDS)
    with pytest.raises(errors.UnknownTokenError, match=r"^Token 'x' not in vocab$") as info:
        strict.encode("1 x 2")
    assert isinstance(info.value, ValueError)
    with pytest.raises(errors.UnknownTokenError, match=r"^Token 'é' not in vocab$"):
        strict.encode("é")
    lenient = SimpleTokenizer(WORDS, unk_fallback=True)
    assert lenient.encode("1 x é 2") == [8, 6, 6, 9]


def test_bos_eos_only_when_configured() -> None:
    plain = SimpleTokenizer(WORDS)
    assert plain.encode("1") == plain.encode("1", add_special_tokens=False) == [8]
    both = SimpleTokenizer(WORDS, add_bos=True, add_eos=True)
    assert both.encode("1") == [4, 8, 3]
    assert both.encode("1", add_special_tokens=False) == [8]


def test_char_and_byte_ids() -> None:
    chars = CharTokenizer("ab ")
    assert chars.vocab_size == 10
    assert chars.encode("ba a") == [8, 7, 9, 7]
    assert chars.decode([8, 7, 9, 7]) == "ba a"
    assert CharTokenizer(["x", "y"]).encode("yx") == [8, 7]
    b = ByteTokenizer()
    assert b.vocab_size == 263
    assert b.encode("A\n") == [7 + 65, 7 + 10]
    assert b.encode("é") == [7 + 0xC3, 7 + 0xA9]


def test_token_bytes_are_raw_bytes_for_byte_level_tokens(bpe_tokenizer) -> None:
    chars = {c: b for b, c in enumerate(reference.byte_chars())}
    raw = bpe_tokenizer.token_bytes()
    assert raw[:7] == [s.encode() for s in SPECIALS_IN_ORDER]
    for token, data in zip(
        bpe_tokenizer.convert_ids_to_tokens(list(range(7, 512))), raw[7:], strict=True
    ):
        assert data == bytes(chars[c] for c in token)
    assert SimpleTokenizer(["é"]).token_bytes()[7] == "é".encode()


SPECIALS_IN_ORDER = ["[PAD]", "[CLS]", "[MASK]", "[EOS]", "[BOS]", "[SEP]", "[UNK]"]


def test_byte_decode_of_invalid_utf8_uses_the_replacement_character() -> None:
    b = ByteTokenizer()
    assert b.decode([7 + 0xC3]) == "\ufffd"
    assert b.decode([7 + 0xFF, 7 + 65]) == "\ufffdA"


def test_decode_accepts_lists_arrays_tensors_and_ints(simple_tokenizer) -> None:
    ids = [1, 8, 9, 5]
    expected = "[CLS] 1 2 [SEP]"
    t = simple_tokenizer
    assert t.decode(ids) == expected
    assert t.decode(np.array(ids, dtype=np.int32)) == expected
    assert t.decode(torch.tensor(ids)) == expected
    assert t.decode(8) == "1"
    assert t.decode(torch.tensor(8)) == "1"
    assert t.decode(ids, skip_special_tokens=True) == "1 2"
    assert t.batch_decode([[8], [9, 10]]) == ["1", "2 3"]
    assert t.batch_decode(torch.tensor([[8, 0], [9, 10]]), skip_special_tokens=True) == ["1", "2 3"]
    assert t.batch_decode(np.array([[8, 0]])) == ["1 [PAD]"]
    # A 1-D list or array is a batch of one-token sequences, as in HF.
    assert t.batch_decode(np.array([8, 9])) == t.batch_decode([8, 9]) == ["1", "2"]


# --- __call__ and batch_encode -------------------------------------------------------------


def test_call_single_and_batch_without_padding(simple_tokenizer) -> None:
    t = simple_tokenizer
    assert t("1 2") == {"input_ids": [8, 9], "attention_mask": [1, 1]}
    out = t(["1 2", "3"])
    assert out["input_ids"] == [[8, 9], [10]]
    assert out.attention_mask == [[1, 1], [1]]
    assert "attention_mask" not in t("1", return_attention_mask=False)


def test_call_padding_truncation_and_tensors(simple_tokenizer) -> None:
    t = simple_tokenizer
    out = t(["1 2 3", "4"], padding=True, return_tensors="np")
    np.testing.assert_array_equal(out["input_ids"], [[8, 9, 10], [11, 0, 0]])
    np.testing.assert_array_equal(out["attention_mask"], [[1, 1, 1], [1, 0, 0]])
    assert out["input_ids"].dtype == np.int64
    out = t(["1 2 3", "4"], padding="max_length", max_length=4, return_tensors="pt")
    assert out["input_ids"].dtype == torch.int64
    assert out["input_ids"].tolist() == [[8, 9, 10, 0], [11, 0, 0, 0]]
    out = t(["1 2 3", "4"], padding=True, truncation=True, max_length=2)
    assert out["input_ids"] == [[8, 9], [11, 0]]
    out = t(["1 2 3"], padding=True, pad_to_multiple_of=4)
    assert out["input_ids"] == [[8, 9, 10, 0]]
    single = t("1 2", return_tensors="pt")
    assert single["input_ids"].shape == (1, 2)


def test_text_target_comes_back_as_labels(make_tokenizer) -> None:
    # Seq2seq suites encode sources and targets in one call: the targets' ids, padded on
    # their own with the pad id, are the labels; targets alone are an ordinary encoding.
    t = make_tokenizer("simple", add_bos=True, add_eos=True)
    out = t(["1 2", "3"], text_target=["4", "5 6 7"], padding=True)
    assert out["input_ids"] == [[4, 8, 9, 3], [4, 10, 3, 0]]
    assert out["labels"] == [[4, 11, 3, 0, 0], [4, 12, 13, 14, 3]]
    assert list(out) == ["input_ids", "attention_mask", "labels"]
    assert t("1", text_target="2 3")["labels"] == [4, 9, 10, 3]
    alone = t(text_target=("4", "5 6 7"), padding=True, return_tensors="pt")
    assert alone["input_ids"].tolist() == [[4, 11, 3, 0, 0], [4, 12, 13, 14, 3]]
    assert alone["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert "labels" not in alone
    cut = t(["1"], text_target=["5 6 7 8"], truncation=True, max_length=4, return_tensors="np")
    np.testing.assert_array_equal(cut["labels"], [[4, 12, 13, 3]])


def test_text_pairs_by_hand(make_tokenizer) -> None:
    # [BOS] A [EOS] [BOS] B [EOS]: token type 0 on the first part, 1 on the second; the
    # special mask marks the BOS/EOS added and the padding.
    t = make_tokenizer("simple", add_bos=True, add_eos=True)
    out = t("1 2", "3", return_token_type_ids=True, return_special_tokens_mask=True)
    assert out["input_ids"] == [4, 8, 9, 3, 4, 10, 3]
    assert out["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    assert out["special_tokens_mask"] == [1, 0, 0, 1, 1, 0, 1]
    assert list(out) == ["input_ids", "token_type_ids", "attention_mask", "special_tokens_mask"]
    batch = t(["1", "2 3"], ["4 5", ""], padding=True, return_tensors="np", return_length=True)
    np.testing.assert_array_equal(
        batch["input_ids"], [[4, 8, 3, 4, 11, 12, 3], [4, 9, 10, 3, 4, 3, 0]]
    )
    np.testing.assert_array_equal(batch["attention_mask"].sum(1), [7, 6])
    np.testing.assert_array_equal(batch["length"], [7, 7])
    assert t.encode("1", "2") == [4, 8, 3, 4, 9, 3]
    bare = make_tokenizer("simple")
    assert bare("1 2", "3", return_token_type_ids=True)["token_type_ids"] == [0, 0, 1]
    assert bare.num_special_tokens_to_add(pair=True) == 0
    assert t.num_special_tokens_to_add(pair=True) == 4
    assert t.get_special_tokens_mask([8, 9], [10]) == [1, 0, 0, 1, 1, 0, 1]
    assert t("1 2 3 4", "5 6 7", truncation="only_first", max_length=8)["input_ids"] == [
        4, 8, 3, 4, 12, 13, 14, 3
    ]  # fmt: skip
    assert t("1 2", "5 6 7", truncation="only_second", max_length=7)["input_ids"] == [
        4, 8, 9, 3, 4, 12, 3
    ]  # fmt: skip
    # Targets pair up the same way; their ids are the labels.
    seq2seq = t("1", "2", text_target="3", text_pair_target="4 5")
    assert seq2seq["labels"] == [4, 10, 3, 4, 11, 12, 3]


@pytest.mark.parametrize(
    ("truncation", "side", "expected"),
    [
        # 4 + 3 content tokens, 3 fit: longest_first halves the budget, the odd token to
        # the longer text; only_* cut one text; left cuts from the start.
        (True, "right", [4, 8, 9, 3, 4, 12, 3]),
        ("longest_first", "left", [4, 10, 11, 3, 4, 14, 3]),
        ("only_first", "right", None),
        ("only_second", "right", None),
    ],
)
def test_pair_truncation_by_hand(make_tokenizer, truncation, side, expected) -> None:
    t = make_tokenizer("simple", add_bos=True, add_eos=True, truncation_side=side)
    call = lambda: t("1 2 3 4", "5 6 7", truncation=truncation, max_length=7)  # noqa: E731
    if expected is None:  # either text alone would have to give up all its tokens
        with pytest.raises(errors.ConfigError, match="would keep no token"):
            call()
    else:
        assert call()["input_ids"] == expected


def test_overflowing_windows_by_hand(make_tokenizer) -> None:
    # 7 tokens, 3 per window (max_length 5 less BOS/EOS), windows sharing 1 token; the rows
    # of every text come back as one batch with the text each row came from.
    t = make_tokenizer("simple", add_bos=True, add_eos=True)
    options = dict(truncation=True, max_length=5, stride=1, return_overflowing_tokens=True)
    out = t(["1 2 3 4 5 6 7", "8"], **options)
    assert out["input_ids"] == [
        [4, 8, 9, 10, 3], [4, 10, 11, 12, 3], [4, 12, 13, 14, 3], [4, 15, 3]
    ]  # fmt: skip
    assert out["overflow_to_sample_mapping"] == [0, 0, 0, 1]
    single = t("1 2", **options, return_tensors="pt")  # a batch of one row, as in HF
    assert single["input_ids"].tolist() == [[4, 8, 9, 3]]
    assert single["overflow_to_sample_mapping"].tolist() == [0]
    t.truncation_side = "left"  # from the end backwards
    assert t("1 2 3 4 5 6 7", **options)["input_ids"] == [
        [4, 12, 13, 14, 3], [4, 10, 11, 12, 3], [4, 8, 9, 10, 3]
    ]  # fmt: skip
    # Of a pair, the text only_second names is windowed and the first repeated.
    t.truncation_side = "right"
    pair = t("1 2", "3 4 5 6 7", **(options | dict(truncation="only_second", max_length=8)))
    assert pair["input_ids"] == [[4, 8, 9, 3, 4, *window, 3] for window in (
        [10, 11], [11, 12], [12, 13], [13, 14]
    )]  # fmt: skip


def test_pre_split_words_by_hand(make_tokenizer) -> None:
    # Each word is encoded on its own; word_ids say which word each token came from (None on
    # BOS/EOS and padding) and sequence_ids which text of a pair.
    t = make_tokenizer("simple", add_bos=True, add_eos=True)
    one = t(["1", "2 3", "4"], ["5"], is_split_into_words=True, return_token_type_ids=True)
    assert one["input_ids"] == [4, 8, 9, 10, 11, 3, 4, 12, 3]
    assert one.word_ids() == [None, 0, 1, 1, 2, None, None, 0, None]
    assert one.sequence_ids() == [None, 0, 0, 0, 0, None, None, 1, None]
    batch = t([["1", "2"], ["3"]], is_split_into_words=True, padding=True, padding_side="left")
    assert batch["input_ids"] == [[4, 8, 9, 3], [0, 4, 10, 3]]
    assert batch.word_ids(1) == [None, None, 0, None]
    assert pickle.loads(pickle.dumps(batch)).word_ids(1) == [None, None, 0, None]  # to workers
    assert copy.deepcopy(batch).sequence_ids(0) == [None, 0, 0, None]
    cut = t([["1", "2", "3 4"]], is_split_into_words=True, truncation=True, max_length=4)
    assert cut.word_ids(0) == [None, 0, 1, None]
    assert t([], is_split_into_words=True)["input_ids"] == [4, 3]  # one text of no words
    chars = make_tokenizer("char")  # words are pieces of text, no spaces added between
    assert chars(["ab", "c"], is_split_into_words=True)["input_ids"] == chars("abc")["input_ids"]


@pytest.mark.parametrize(
    ("total", "size", "stride", "left", "spans"),
    [
        (7, 3, 1, False, [(0, 3), (2, 5), (4, 7)]),
        (7, 3, 0, False, [(0, 3), (3, 6), (6, 7)]),
        (7, 3, 1, True, [(4, 7), (2, 5), (0, 3)]),
        (8, 3, 1, True, [(5, 8), (3, 6), (1, 4), (0, 2)]),
        (3, 3, 2, False, [(0, 3)]),
        (0, 3, 0, False, [(0, 0)]),
    ],
)
def test_window_ranges_by_hand(total, size, stride, left, spans) -> None:
    assert window_ranges(total, size, stride, left) == spans


@given(st.integers(0, 80), st.integers(1, 20), st.data(), st.booleans())
def test_windows_cover_the_text_sharing_stride_tokens(total, size, data, left) -> None:
    stride = data.draw(st.integers(0, size - 1))
    spans = window_ranges(total, size, stride, left)
    in_text_order = sorted(spans)
    assert spans == (in_text_order[::-1] if left else in_text_order)
    assert in_text_order[0][0] == 0
    assert in_text_order[-1][1] == total
    # Every window is full but the one at the far end (the text's start when cutting from
    # the left), and neighbours share exactly `stride` tokens.
    short = in_text_order[0] if left else in_text_order[-1]
    for start, stop in spans:
        assert stop - start == min(size, total) or (start, stop) == short
    for (_, stop), (next_start, _) in itertools.pairwise(in_text_order):
        assert stop - next_start == stride


@pytest.mark.parametrize(
    ("first", "second", "budget", "strategy", "kept"),
    [
        (4, 3, 10, "longest_first", (4, 3)),  # fits
        (4, 3, 3, "longest_first", (2, 1)),  # both cut: the odd token to the longer
        (3, 3, 3, "longest_first", (1, 2)),  # a tie: the odd token to the second
        (2, 9, 6, "longest_first", (2, 4)),  # the longer alone makes room
        (9, 2, 6, "longest_first", (4, 2)),
        (4, 3, 0, "longest_first", (0, 0)),
        (4, 3, 1, "longest_first", (1, 0)),
        (4, 3, 4, "only_first", (1, 3)),
        (4, 3, 3, "only_first", None),  # the first would keep nothing
        (4, 3, 5, "only_second", (4, 1)),
        (4, 3, 4, "only_second", None),
    ],
)
def test_kept_lengths_by_hand(first, second, budget, strategy, kept) -> None:
    assert kept_lengths(first, second, budget, strategy) == kept


@given(
    st.integers(0, 60), st.integers(0, 60), st.integers(0, 80),
    st.sampled_from(["longest_first", "only_first", "only_second"]),
)  # fmt: skip
def test_kept_lengths_fill_the_budget_and_cut_the_longer(first, second, budget, strategy) -> None:
    kept = kept_lengths(first, second, budget, strategy)
    if kept is None:
        assert strategy != "longest_first"
        cut = first if strategy == "only_first" else second
        assert cut <= first + second - budget  # it could not keep one token
        return
    k1, k2 = kept
    assert 0 <= k1 <= first
    assert 0 <= k2 <= second
    assert k1 + k2 == min(first + second, budget)
    if strategy == "only_first":
        assert k2 == second
    elif strategy == "only_second":
        assert k1 == first
    elif k1 < first and k2 < second:  # both cut: an even split, the odd token to the longer
        assert abs(k1 - k2) <= 1
        assert (k1 > k2) == (first > second) or k1 == k2
    else:  # only the longer one (or neither) was cut; the shorter keeps every token
        assert k1 == first or first >= second
        assert k2 == second or second >= first


def test_the_encoding_reads_like_hf_batch_encoding(simple_tokenizer) -> None:
    out = simple_tokenizer(["1 2", "3"], padding=True, return_tensors="pt")
    assert out.input_ids is out["input_ids"]
    assert out.data is out  # HF code reads BatchEncoding.data as the dict
    with pytest.raises(AttributeError, match="token_type_ids"):
        _ = out.token_type_ids
    moved = out.to("cpu", non_blocking=True)
    assert moved is out
    assert out["input_ids"].tolist() == [[8, 9], [10, 0]]
    assert dict(**out).keys() == {"input_ids", "attention_mask"}


@pytest.mark.parametrize(
    ("device", "error", "match"),
    [
        ("gpu", errors.ConfigError, "^device: Expected one of cpu, cuda"),
        (-1, errors.ConfigError, "^device: Device index must not be negative"),
        (None, errors.DtypeError, "^device: expected a str, an int or a torch.device, got None"),
        (1.5, errors.DtypeError, "^device: expected a str, an int or a torch.device, got float"),
        (True, errors.DtypeError, "^device: expected a str, an int or a torch.device, got bool"),
        # No CUDA here: CudaUnavailableError; a GPU machine has no 99th device: ConfigError.
        ("cuda:99", errors.FerrofixError, "^device: cuda:99 asked for"),
    ],
)
def test_encoding_to_refuses_devices_it_cannot_reach(device, error, match) -> None:
    out = SIMPLE(["1 2"], return_tensors="pt")
    with pytest.raises(error, match=match):
        out.to(device)
    assert out["input_ids"].device.type == "cpu"  # nothing moved
    with pytest.raises(errors.ConfigError, match=r"^non_blocking: must be True or False"):
        out.to("cpu", non_blocking="yes")


def test_encoding_to_moves_tensors_and_leaves_numpy_alone() -> None:
    tensors = SIMPLE(["1 2"], return_tensors="pt")
    assert tensors.to(torch.device("meta")) is tensors
    assert tensors["input_ids"].device.type == "meta"
    arrays = SIMPLE(["1 2"], return_tensors="np")
    assert arrays.to("meta")["input_ids"] is arrays["input_ids"]


def test_model_max_length_is_what_max_length_defaults_to() -> None:
    t = SimpleTokenizer(WORDS, model_max_length=np.int64(4))
    assert t.model_max_length == 4
    assert t(["1 2 3 4 5 6"], truncation=True)["input_ids"] == [[8, 9, 10, 11]]
    assert t(["1"], padding="max_length")["input_ids"] == [[8, 0, 0, 0]]
    assert t.pad([{"input_ids": [8]}], padding="max_length")["input_ids"] == [[8, 0, 0, 0]]
    assert t(["1 2 3 4 5 6"])["input_ids"] == [[8, 9, 10, 11, 12, 13]]  # no truncation asked


def test_without_model_max_length_there_is_no_limit_as_in_hf() -> None:
    t = SimpleTokenizer(WORDS)
    # HF's "no limit" value, so code like min(tokenizer.model_max_length, 1024) works.
    assert t.model_max_length == int(1e30)
    assert min(t.model_max_length, 1024) == 1024
    assert t(["1 2 3 4 5 6"], truncation=True)["input_ids"] == [[8, 9, 10, 11, 12, 13]]
    with pytest.raises(errors.ConfigError, match="padding='max_length' needs max_length"):
        t(["1"], padding="max_length")
    with pytest.raises(errors.ConfigError, match="needs max_length or the tokenizer's model_max"):
        t.pad([{"input_ids": [8]}], padding="max_length")
    t.model_max_length = "long"
    with pytest.raises(errors.ConfigError, match="model_max_length: must be an integer"):
        t(["1"], truncation=True)


def test_truncation_keeps_bos_and_eos() -> None:
    t = SimpleTokenizer(WORDS, add_bos=True, add_eos=True)
    assert t("1 2 3 4", truncation=True, max_length=4)["input_ids"] == [4, 8, 9, 3]
    t.truncation_side = "left"
    assert t("1 2 3 4", truncation=True, max_length=4)["input_ids"] == [4, 10, 11, 3]


def test_left_padding() -> None:
    t = SimpleTokenizer(WORDS, padding_side="left")
    out = t(["1 2", "3"], padding=True)
    assert out["input_ids"] == [[8, 9], [0, 10]]
    assert out["attention_mask"] == [[1, 1], [0, 1]]


def test_batch_encode_is_one_padded_int64_array(simple_tokenizer) -> None:
    ids, mask, lengths = simple_tokenizer.batch_encode(["1 2 3", "", "4"])
    np.testing.assert_array_equal(ids, [[8, 9, 10], [0, 0, 0], [11, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [0, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 0, 1])
    assert ids.dtype == mask.dtype == lengths.dtype == np.int64
    ids, _, _ = simple_tokenizer.batch_encode(["1"], max_length=3, pad_to_multiple_of=4)
    assert ids.shape == (1, 4)
    ids, _, lengths = simple_tokenizer.batch_encode(["1 2 3"], max_length=2, truncation=True)
    assert ids.tolist() == [[8, 9]]
    assert lengths.tolist() == [2]


def test_empty_batch_gives_zero_by_zero_arrays(simple_tokenizer) -> None:
    ids, mask, lengths = simple_tokenizer.batch_encode([])
    assert ids.shape == mask.shape == (0, 0)
    assert lengths.shape == (0,)
    assert simple_tokenizer([], padding=True, return_tensors="np")["input_ids"].shape == (0, 0)


def test_batch_encode_takes_str_subclasses_and_leaves_the_list_alone(simple_tokenizer) -> None:
    class Text(str):
        pass

    texts = [Text("1 2"), "3", Text("")]
    ids, _, lengths = simple_tokenizer.batch_encode(texts)
    want, _, want_lengths = simple_tokenizer.batch_encode(["1 2", "3", ""])
    np.testing.assert_array_equal(ids, want)
    np.testing.assert_array_equal(lengths, want_lengths)
    assert texts == ["1 2", "3", ""]
    assert type(texts[0]) is Text


def test_batch_encode_keeps_no_reference_to_its_texts(simple_tokenizer) -> None:
    """The strings are held only while the call runs, on success and on every error."""
    texts = [" ".join(["1", str(i % 40)]) for i in range(3000)]
    before = [sys.getrefcount(text) for text in texts]
    simple_tokenizer.batch_encode(texts)
    simple_tokenizer(texts, padding=True)
    for bad in (7, "1 \ud800", "1 unknown"):
        broken = [*texts[:2000], bad, *texts[2000:]]
        with pytest.raises((errors.DtypeError, errors.ConfigError, errors.UnknownTokenError)):
            simple_tokenizer.batch_encode(broken)
        del broken
    assert [sys.getrefcount(text) for text in texts] == before


def test_batch_encode_reads_a_list_another_thread_keeps_rewriting(simple_tokenizer) -> None:
    """With the GIL released, another thread replaces the list's strings (freeing the old
    ones, which only the call's own references keep alive): every batch still encodes the
    strings it started from."""
    texts = [f"{i % 50} {(i * 7) % 50} {(i * 3) % 50}" for i in range(20_000)]
    want, _, _ = simple_tokenizer.batch_encode(list(texts))
    shared = list(texts)
    stop = threading.Event()

    def rewrite() -> None:
        while not stop.is_set():
            for i in range(0, len(shared), 97):
                shared[i] = "".join(texts[i])  # an equal string, a new object
            shared[:] = [("x" + text)[1:] for text in texts]

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        for _ in range(30):
            ids, _, _ = simple_tokenizer.batch_encode(shared)
            np.testing.assert_array_equal(ids, want)
    finally:
        stop.set()
        writer.join()


def test_batch_encode_matches_single_encodes_for_every_model(make_tokenizer) -> None:
    texts = [*fixture_corpus()[:300], "", "  ", "[MASK] hello [SEP]x", "é ü 中文 😀"]
    for kind in ("byte", "bpe"):
        t = make_tokenizer(kind)
        ids, _, lengths = t.batch_encode(texts)
        for row, n, text in zip(ids, lengths, texts, strict=True):
            assert row[:n].tolist() == t.encode(text)


def test_batch_encode_does_not_depend_on_the_thread_count(bpe_tokenizer) -> None:
    texts = fixture_corpus() * 3
    results = []
    for threads in (1, 2, 3):
        parallel.set_num_threads(threads)
        try:
            results.append(bpe_tokenizer.batch_encode(texts)[0])
        finally:
            parallel.set_num_threads(None)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


def test_the_first_bad_text_decides_the_batch_error() -> None:
    """Unknown words in several of the parallel blocks: the error always names the one in
    the earliest text, whatever the thread count and whichever block finishes first."""
    t = SimpleTokenizer(WORDS)
    # 20 blocks of 256 texts: the first bad text ends the first half, which a second worker
    # does not reach; the second half's worker meets its bad text right away.
    texts = ["1 2 3"] * 5120
    for row in (2559, 2560, 3900, 5119):
        texts[row] = f"1 bad{row}"
    for threads in (1, 2, 3):
        parallel.set_num_threads(threads)
        try:
            for _ in range(5):
                with pytest.raises(errors.UnknownTokenError, match=r"^Token 'bad2559' not in"):
                    t.batch_encode(texts)
        finally:
            parallel.set_num_threads(None)


def _big_batch(seed: int) -> list[str]:
    """Texts whose (ids, mask) outputs are large enough for the batch pool (> 1 MB each)."""
    gen = np.random.default_rng(seed)
    return [" ".join(map(str, gen.integers(0, 50, gen.integers(0, 12)))) for _ in range(16_000)]


def _expected_rows(t: SimpleTokenizer, texts: list[str], width: int, pad: int) -> np.ndarray:
    rows = [t.encode(text) for text in texts]
    if t.padding_side == "left":
        return np.array([[pad] * (width - len(r)) + r for r in rows])
    return np.array([r + [pad] * (width - len(r)) for r in rows])


def test_pooled_batches_are_never_handed_out_while_viewed() -> None:
    from ferrofix import _native
    from ferrofix.tokenizers import release_batch_buffers

    release_batch_buffers()
    t = SimpleTokenizer(WORDS)
    first_texts = _big_batch(0)
    ids, mask, _ = t.batch_encode(first_texts)
    assert ids.nbytes > 1 << 20
    kept_ids, kept_mask = ids[5:], mask.T  # views keep the memory alive
    want_ids, want_mask = ids.copy(), mask.copy()
    del ids, mask
    for seed in (1, 2, 3, 4, 5):  # more calls than the pool holds buffers
        other, other_mask, _ = t.batch_encode(_big_batch(seed))
        assert not np.shares_memory(other, kept_ids)
        assert not np.shares_memory(other_mask, kept_mask)
    np.testing.assert_array_equal(kept_ids, want_ids[5:])
    np.testing.assert_array_equal(kept_mask, want_mask.T)
    del kept_ids, kept_mask, other, other_mask
    assert _native.core().idle_batch_bytes() >= 2 * want_ids.nbytes


def test_reused_batch_memory_holds_only_the_new_batch() -> None:
    """A pooled buffer still holds the previous batch's bytes: every cell is rewritten,
    padding and mask zeros included, whatever the padding side and pad id."""
    from ferrofix import _native
    from ferrofix.tokenizers import release_batch_buffers

    release_batch_buffers()
    t = SimpleTokenizer(WORDS)
    ids, mask, _ = t.batch_encode(_big_batch(0), max_length=16)  # a full-width first batch
    address = ids.__array_interface__["data"][0]
    del ids, mask
    left = SimpleTokenizer(WORDS, padding_side="left", add_bos=True)
    texts = _big_batch(1)
    ids, mask, lengths = left.batch_encode(texts, max_length=16)
    assert address in {a.__array_interface__["data"][0] for a in (ids, mask)}
    np.testing.assert_array_equal(ids, _expected_rows(left, texts, 16, 0))
    np.testing.assert_array_equal(mask, np.arange(16)[None, :] >= 16 - lengths[:, None])
    assert _native.core().idle_batch_bytes() == 0  # both buffers are in use
    del ids, mask
    assert release_batch_buffers() >= 2 * 16 * len(texts) * 8


def test_pooled_lengths_are_reused_only_once_released_and_hold_the_new_batch() -> None:
    """Lengths of a large batch come from the pool too: a kept view blocks reuse, and a
    reused buffer holds only the new batch's lengths."""
    from ferrofix.tokenizers import release_batch_buffers

    release_batch_buffers()
    t = SimpleTokenizer(WORDS)
    gen = np.random.default_rng(7)
    batches = [[" ".join(["1"] * int(k)) for k in gen.integers(0, 4, 50_000)] for _ in range(3)]
    _, _, first = t.batch_encode(batches[0])
    assert first.nbytes >= 256 << 10
    kept, want = first[::7], first[::7].copy()
    address = first.__array_interface__["data"][0]
    del first
    _, _, second = t.batch_encode(batches[1])
    assert not np.shares_memory(second, kept)
    np.testing.assert_array_equal(kept, want)
    del kept
    addresses = {second.__array_interface__["data"][0]}
    for texts in batches[2], batches[0]:
        _, _, lengths = t.batch_encode(texts)
        np.testing.assert_array_equal(lengths, [len(text.split()) for text in texts])
        addresses.add(lengths.__array_interface__["data"][0])
        del lengths
    assert address in addresses
    release_batch_buffers()


def test_token_id_buffers_are_kept_between_batches_until_released() -> None:
    from ferrofix import _native
    from ferrofix.tokenizers import release_batch_buffers

    t = SimpleTokenizer(WORDS)
    texts = _big_batch(2)
    first = t.batch_encode(texts)
    assert _native.core().idle_token_id_bytes() >= 4 * int(first[2].sum())
    again = t.batch_encode(texts)  # out of reused buffers: the same ids
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    release_batch_buffers()
    assert _native.core().idle_token_id_bytes() == 0


def test_text_views_are_kept_between_batches_until_released() -> None:
    """The borrowed views of a text list are kept for the next call, emptied: a shorter list
    after a long one sees only its own texts."""
    from ferrofix import _native
    from ferrofix.tokenizers import release_batch_buffers

    release_batch_buffers()
    assert _native.core().idle_text_view_bytes() == 0
    t = SimpleTokenizer(WORDS)
    t.batch_encode(_big_batch(3))
    # A view (16 bytes) and a held string's address (8) per text.
    assert _native.core().idle_text_view_bytes() >= 24 * len(_big_batch(3))
    few = ["1 2", "3"]
    ids, _, lengths = t.batch_encode(few)
    np.testing.assert_array_equal(lengths, [2, 1])
    np.testing.assert_array_equal(ids, [t.encode(few[0]), [*t.encode(few[1]), t.pad_token_id]])
    release_batch_buffers()
    assert _native.core().idle_text_view_bytes() == 0


# --- pad -----------------------------------------------------------------------------------


def test_pad_pads_sequence_keys_and_passes_others_through(simple_tokenizer) -> None:
    features = [{"input_ids": [8, 9, 10], "label": 1}, {"input_ids": [11], "label": 0}]
    out = simple_tokenizer.pad(features, return_tensors="np")
    np.testing.assert_array_equal(out["input_ids"], [[8, 9, 10], [11, 0, 0]])
    np.testing.assert_array_equal(out["attention_mask"], [[1, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(out["label"], [1, 0])
    out = simple_tokenizer.pad(
        [{"input_ids": torch.tensor([8]), "special_tokens_mask": [0]}],
        padding="max_length",
        max_length=3,
    )
    assert isinstance(out["input_ids"], torch.Tensor)  # tensors in, tensors out (as HF)
    assert out["input_ids"].tolist() == [[8, 0, 0]]
    assert out["special_tokens_mask"].tolist() == [[0, 1, 1]]
    assert out["attention_mask"].tolist() == [[1, 0, 0]]
    out = simple_tokenizer.pad({"input_ids": [8, 9]}, padding="max_length", max_length=3)
    assert out == {"input_ids": [8, 9, 0], "attention_mask": [1, 1, 0]}


INT64_IDS = st.integers(-(2**63), 2**63 - 1)


def _padded_by_hand(rows: list[list[int]], width: int, fill: int, left: bool) -> np.ndarray:
    out = np.full((len(rows), width), fill, dtype=np.int64)
    for i, row in enumerate(rows):
        if row:
            if left:
                out[i, width - len(row) :] = row
            else:
                out[i, : len(row)] = row
    return out


@given(
    rows=st.lists(st.lists(INT64_IDS, max_size=9), max_size=6),
    left=st.booleans(),
    multiple=st.sampled_from([None, 1, 4, 7]),
    as_numpy_ints=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_pad_of_id_lists_matches_padding_by_hand(rows, left, multiple, as_numpy_ints) -> None:
    # Plain ints take the native conversion; numpy ints in the lists take numpy's. Both must
    # give the array padded by hand, with the mask padded alongside.
    t = SimpleTokenizer(WORDS, padding_side="left" if left else "right")
    features = [
        {"input_ids": [np.int64(i) for i in row] if as_numpy_ints else list(row)} for row in rows
    ]
    out = t.pad(features, pad_to_multiple_of=multiple, return_tensors="np")
    width = max((len(r) for r in rows), default=0)
    if multiple:
        width = -(-width // multiple) * multiple
    assert out["input_ids"].dtype == np.int64
    np.testing.assert_array_equal(out["input_ids"], _padded_by_hand(rows, width, 0, left))
    ones = [[1] * len(r) for r in rows]
    np.testing.assert_array_equal(out["attention_mask"], _padded_by_hand(ones, width, 0, left))


def test_native_list_padding_declines_what_it_cannot_convert() -> None:
    # None sends pad to its general path, which converts or names the row at fault.
    from ferrofix._native import core

    pad = core().pad_int_lists
    np.testing.assert_array_equal(pad([[5, 6], [7]], 3, -1, False), [[5, 6, -1], [7, -1, -1]])
    np.testing.assert_array_equal(pad([[5, 6], [7]], 3, -1, True), [[-1, 5, 6], [-1, -1, 7]])
    assert pad([], 0, 0, False).shape == (0, 0)
    for rows, width in [
        ([[1, 2, 3]], 2),  # longer than the width
        ([(1, 2)], 2),  # a tuple row
        ([[1, True]], 2),  # bool is an int subclass, not an id
        ([[1, np.int64(2)]], 2),
        ([[1, 2.0]], 2),
        ([[2**63]], 1),
        ([[-(2**63) - 1]], 1),
        ([[1]], 2**62),  # more bytes than an array may hold
    ]:
        assert pad(rows, width, 0, False) is None, rows


# --- round trips ----------------------------------------------------------------------------

WORD_TEXTS = st.lists(st.sampled_from(WORDS), max_size=30).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(text=WORD_TEXTS)
def test_simple_round_trip(text: str) -> None:
    t = SimpleTokenizer(WORDS)
    assert t.decode(t.encode(text)) == text


SPACES = " \t\n\r\x0b\x0c\u00a0\u2028\u3000"
SPECIALS = ["[PAD]", "[CLS]", "[MASK]", "[EOS]", "[BOS]", "[SEP]", "[UNK]"]
WORD_PARTS = st.lists(
    st.sampled_from([*WORDS, "é", "wörd", *SPECIALS]) | st.text(alphabet=SPACES, min_size=1),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(parts=WORD_PARTS)
def test_simple_encode_matches_the_reference(parts: list[str]) -> None:
    vocab = [*WORDS, "é", "wörd"]
    # Words get a leading space only, so a special may touch the word before it: "3[MASK]".
    text = "".join(p if p in SPECIALS or p.isspace() else f" {p}" for p in parts)
    t = SimpleTokenizer(vocab)
    assert t.encode(text) == reference.word_encode(text, vocab, SPECIALS)
    ids, _, lengths = t.batch_encode([text, text + " 1"])
    assert ids[0, : lengths[0]].tolist() == t.encode(text)


# Printable ASCII words of 1-20 bytes: shorter and longer than the 8-byte key prefix.
ASCII_WORDS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="["),
    min_size=1,
    max_size=20,
)
ASCII_SPACES = st.sampled_from([" ", "  ", "\t", "\n ", " \r\x0b\x0c "])


@settings(max_examples=200, deadline=None)
@given(
    vocab=st.lists(ASCII_WORDS, min_size=1, max_size=40, unique=True),
    picks=st.lists(st.tuples(st.integers(0, 10**6), st.booleans(), ASCII_SPACES), max_size=40),
    suffix=ASCII_WORDS,
)
def test_word_scanner_matches_a_plain_split(vocab, picks, suffix) -> None:
    """Long texts (past the scanner's 64-byte blocks) of vocab words and near misses (a vocab
    word with bytes appended, sharing its prefix) give the ids of a plain split and lookup."""
    t = SimpleTokenizer(vocab, unk_fallback=True)
    words = [vocab[i % len(vocab)] + (suffix if miss else "") for i, miss, _ in picks]
    text = "".join(word + space for word, (_, _, space) in zip(words, picks, strict=True))
    ids_of = {word: i + 7 for i, word in enumerate(vocab)}
    expected = [ids_of.get(word, 6) for word in text.split()]
    assert t.encode(text) == expected
    assert t.encode(text.rstrip()) == expected
    ids, _, lengths = t.batch_encode([text, "\t" + text.rstrip()])
    assert ids[0, : lengths[0]].tolist() == expected
    assert ids[1, : lengths[1]].tolist() == expected


def test_a_special_token_starting_with_whitespace_is_matched() -> None:
    specials = ["[PAD]", " x", "[UNK]"]
    t = SimpleTokenizer(["a", "b"], special_tokens=specials)
    for text in ["a x b", "a  x", " xa b"]:
        expected = reference.word_encode(text, ["a", "b"], specials)
        assert t.encode(text) == expected, text
        ids, _, lengths = t.batch_encode([text])
        assert ids[0, : lengths[0]].tolist() == expected


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="abc xyz.", max_size=40))
def test_char_round_trip(text: str) -> None:
    t = CharTokenizer("abc xyz.")
    assert t.decode(t.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_byte_and_bpe_round_trip_any_unicode(text: str) -> None:
    for t in (ByteTokenizer(), _bpe()):
        assert t.decode(t.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(st.integers(7, 262), max_size=30))
def test_byte_encode_of_decode_is_stable(ids: list[int]) -> None:
    t = ByteTokenizer()
    text = t.decode(ids)
    assert t.decode(t.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 262), max_size=12), max_size=6),
    skip=st.booleans(),
)
def test_batch_decode_is_decode_of_each_row(rows: list[list[int]], skip: bool) -> None:
    for t in (SIMPLE, ByteTokenizer()):
        rows_in_range = [[i % len(t) for i in row] for row in rows]
        expected = [t.decode(row, skip) for row in rows_in_range]
        assert t.batch_decode(rows_in_range, skip) == expected
        assert t.batch_decode([np.array(row) for row in rows_in_range], skip) == expected
        width = min(map(len, rows_in_range), default=0)
        square = np.array([row[:width] for row in rows_in_range], dtype=np.int64)
        square = square.reshape(len(rows_in_range), width)
        assert t.batch_decode(square, skip) == [t.decode(row, skip) for row in square]


def _bpe() -> BPETokenizer:
    from ferrofix.tokenizers import _trained_bpe

    return _trained_bpe()


# --- BPE against the reference ------------------------------------------------------------

BPE_CORPUS = [
    "the cat sat on the mat, the cat's hat",
    "low lower lowest newer newest wider",
    "aaaa aaa aa a  aaaaaaa",
    "numbers 1234 12 1234 and 12 again!",
]


@pytest.mark.parametrize(("merges", "min_frequency"), [(40, 2), (200, 1)])
def test_bpe_training_matches_the_reference(merges: int, min_frequency: int) -> None:
    t = BPETokenizer.train(BPE_CORPUS, 7 + 256 + merges, min_frequency=min_frequency)
    chars = {c: b for b, c in enumerate(reference.byte_chars())}
    ours = [
        (bytes(chars[c] for c in left), bytes(chars[c] for c in right)) for left, right in t.merges
    ]
    assert ours == reference.train(BPE_CORPUS, merges, min_frequency)


def test_bpe_training_stops_at_vocab_size_and_min_frequency() -> None:
    t = BPETokenizer.train(BPE_CORPUS, 7 + 256 + 10)
    assert len(t) == 7 + 256 + 10
    assert len(BPETokenizer.train(["ab"], 1000, min_frequency=2)) == 263
    # A vocab_size past any machine's memory means "every merge the corpus allows": the
    # merges are reserved as they are found, not vocab_size of them up front (that aborted).
    everything = BPETokenizer.train(BPE_CORPUS, 2**40, min_frequency=1)
    assert everything.merges == BPETokenizer.train(BPE_CORPUS, 100_000, min_frequency=1).merges


@pytest.mark.parametrize("text", [*BPE_CORPUS, "unseen words: cathat lowlow", "\n\t  x"])
def test_bpe_encoding_matches_the_reference(bpe_tokenizer, text: str) -> None:
    chars = {c: b for b, c in enumerate(reference.byte_chars())}
    merges = [
        (bytes(chars[c] for c in left), bytes(chars[c] for c in right))
        for left, right in bpe_tokenizer.merges
    ]
    tokens = [bytes(chars[c] for c in token) for token in bpe_tokenizer.tokenize(text)]
    assert tokens == reference.encode(text, merges)


def test_bpe_training_is_deterministic_across_thread_counts() -> None:
    corpus = fixture_corpus()
    merges = []
    for threads in (1, 2, 4):
        parallel.set_num_threads(threads)
        try:
            merges.append(BPETokenizer.train(corpus, 600).merges)
        finally:
            parallel.set_num_threads(None)
    assert merges[0] == merges[1] == merges[2]


def test_from_merges_rebuilds_the_same_tokenizer(bpe_tokenizer) -> None:
    lines = [f"{left} {right}" for left, right in bpe_tokenizer.merges]
    rebuilt = BPETokenizer.from_merges(lines)
    assert rebuilt.get_vocab() == bpe_tokenizer.get_vocab()
    text = " ".join(fixture_corpus()[:20])
    assert rebuilt.encode(text) == bpe_tokenizer.encode(text)


# --- persistence ----------------------------------------------------------------------------

ALL_KINDS = ["simple", "char", "byte", "bpe"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_pickle_copy_and_save_round_trip(kind: str, make_tokenizer, tmp_path) -> None:
    t = make_tokenizer(kind, add_eos=True, padding_side="left", clean_up_tokenization_spaces=True)
    text = "1 2 3" if kind == "simple" else "hello world 12"
    written = t.save_pretrained(tmp_path)
    assert sorted(p.rsplit("/", 1)[1] for p in written) == [
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    for clone in (
        pickle.loads(pickle.dumps(t)),
        copy.copy(t),
        copy.deepcopy(t),
        load_tokenizer(tmp_path),
    ):
        assert type(clone) is type(t)
        assert clone == t
        assert clone.encode(text) == t.encode(text)
        assert clone.padding_side == "left"
        assert clone.clean_up_tokenization_spaces is True


def test_pad_token_can_be_reassigned_and_survives_pickle(simple_tokenizer) -> None:
    simple_tokenizer.pad_token = "[EOS]"
    assert simple_tokenizer.pad_token_id == 3
    assert simple_tokenizer(["1 2", "3"], padding=True)["input_ids"] == [[8, 9], [10, 3]]
    assert pickle.loads(pickle.dumps(simple_tokenizer)).pad_token_id == 3


def test_from_pretrained_rejects_directories_it_did_not_write(tmp_path) -> None:
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer"}')
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(errors.ConfigError, match="was not written by a ferrofix tokenizer"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(errors.ConfigError, match="is not valid JSON"):
        load_tokenizer(tmp_path)


def test_from_pretrained_checks_the_class(tmp_path) -> None:
    SimpleTokenizer(WORDS).save_pretrained(tmp_path)
    assert isinstance(Tokenizer.from_pretrained(tmp_path), SimpleTokenizer)
    with pytest.raises(errors.ConfigError, match="holds a SimpleTokenizer, not a ByteTokenizer"):
        ByteTokenizer.from_pretrained(tmp_path)


# --- fixtures -------------------------------------------------------------------------------


def test_fixtures(small_vocab, char_tokenizer, byte_tokenizer, bpe_tokenizer) -> None:
    assert small_vocab == WORDS
    small_vocab.append("changed")  # a fresh list per test: nothing leaks
    assert char_tokenizer.decode(char_tokenizer.encode("hi there!")) == "hi there!"
    assert byte_tokenizer.vocab_size == 263
    assert bpe_tokenizer.vocab_size == 512


def test_bpe_fixture_gives_each_test_its_own_copy(bpe_tokenizer, make_tokenizer) -> None:
    other = make_tokenizer("bpe")
    assert other is not bpe_tokenizer
    bpe_tokenizer.padding_side = "left"
    assert other.padding_side == "right"


SETTINGS_DO_NOT_LEAK = """
import pytest

KINDS = ["simple_tokenizer", "char_tokenizer", "byte_tokenizer", "bpe_tokenizer"]


@pytest.mark.parametrize("name", KINDS)
def test_a_changes_its_tokenizer(name, request):
    t = request.getfixturevalue(name)
    t.padding_side = t.truncation_side = "left"
    t.model_max_length = 3
    t.pad_token = "[SEP]"


@pytest.mark.parametrize("name", KINDS)
def test_b_gets_the_defaults(name, request):
    t = request.getfixturevalue(name)
    assert (t.padding_side, t.truncation_side, t.model_max_length) == ("right", "right", int(1e30))
    assert (t.pad_token, t.pad_token_id) == ("[PAD]", 0)
"""


def test_tokenizer_fixtures_start_from_their_defaults_in_every_test(pytester) -> None:
    # The fixtures copy one tokenizer per process: one test's settings stay in that test.
    pytester.makepyfile(SETTINGS_DO_NOT_LEAK)
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=8)


def test_make_tokenizer_options(make_tokenizer) -> None:
    assert make_tokenizer().vocab_size == 57
    assert make_tokenizer("simple", vocab=["a"], add_bos=True).encode("a") == [4, 7]
    assert make_tokenizer("bpe", vocab_size=300).vocab_size == 300
    with pytest.raises(errors.ConfigError, match="kind: must be one of 'simple', 'char'"):
        make_tokenizer("wordpiece")


def test_special_tokens_mask_by_hand(make_tokenizer) -> None:
    t = make_tokenizer("simple", add_bos=True, add_eos=True)  # [BOS]=4, [EOS]=3, "0"=7
    # A finished sequence: every special id counts, wherever it stands.
    assert t.get_special_tokens_mask([4, 7, 2, 8, 3, 0], already_has_special_tokens=True) == [
        1, 0, 1, 0, 1, 1
    ]  # fmt: skip
    # Content: the BOS/EOS encode would add around it.
    assert t.get_special_tokens_mask([7, 2, 8]) == [1, 0, 0, 0, 1]
    assert make_tokenizer("simple").get_special_tokens_mask([7, 8]) == [0, 0]
    assert t.is_fast is False
    # __call__ marks the BOS/EOS it added and the padding, not specials typed in the text.
    out = t(["[MASK] 0", "1"], padding=True, return_special_tokens_mask=True)
    assert out["input_ids"] == [[4, 2, 7, 3], [4, 8, 3, 0]]
    assert out["special_tokens_mask"] == [[1, 0, 0, 1], [1, 0, 1, 1]]
    t.padding_side = "left"
    out = t(["0 1", "2"], padding=True, return_special_tokens_mask=True, return_tensors="np")
    assert out["special_tokens_mask"].tolist() == [[1, 0, 0, 1], [1, 1, 0, 1]]
    out = t("0 1", add_special_tokens=False, return_special_tokens_mask=True)
    assert out["special_tokens_mask"] == [0, 0]


def test_hf_attributes_and_decode_clean_up_by_hand(make_tokenizer) -> None:
    words = ["hello", "world", ".", "!", "'s", "n't", "do", ","]
    t = make_tokenizer("simple", vocab=words, add_bos=True)
    ids = t.encode("do n't , hello 's world !")
    assert t.decode(ids) == "[BOS] do n't , hello 's world !"
    assert t.decode(ids, True, clean_up_tokenization_spaces=True) == "don't, hello's world!"
    cleaned = t.batch_decode(
        [ids, ids[:2]], skip_special_tokens=True, clean_up_tokenization_spaces=True
    )
    assert cleaned == ["don't, hello's world!", "do"]
    t.clean_up_tokenization_spaces = True  # the default when the argument is None
    assert t.decode(ids[1:]) == "don't, hello's world!"
    assert t.convert_tokens_to_string(["hello", "world", "."]) == "hello world."
    assert t.num_special_tokens_to_add() == 1
    assert t.model_input_names == ["input_ids", "attention_mask"]
    assert t.special_tokens_map["bos_token"] == "[BOS]"
    assert len(t.special_tokens_map) == 7
    out = t(["hello", "hello world"], padding=True, return_length=True, return_token_type_ids=True)
    assert out["token_type_ids"] == [[0, 0, 0], [0, 0, 0]]
    assert out["length"] == [3, 3]  # as returned: padded
    assert t("hello", return_length=True)["length"] == [2]
    byte = make_tokenizer("byte")  # byte-level text is exact: no clean-up, as in HF
    assert byte.decode(byte.encode("a . b"), clean_up_tokenization_spaces=True) == "a . b"
    assert t(["hello", "hello world"], return_length=True)["length"] == [2, 3]


def test_for_numbers() -> None:
    assert SimpleTokenizer.for_numbers(3).get_vocab() == {
        **{s: i for i, s in enumerate(reference_specials())},
        "0": 7,
        "1": 8,
        "2": 9,
    }


def reference_specials() -> list[str]:
    return ["[PAD]", "[CLS]", "[MASK]", "[EOS]", "[BOS]", "[SEP]", "[UNK]"]


# --- bad input ------------------------------------------------------------------------------

SIMPLE = SimpleTokenizer(WORDS)
WRAPPING = SimpleTokenizer(WORDS, add_bos=True, add_eos=True)

BAD_INPUT = [
    (
        lambda: SimpleTokenizer(np.array(3)),
        errors.DtypeError,
        "^vocab: expected a list of str, got ndarray",
    ),
    (
        lambda: SimpleTokenizer(["a"], special_tokens=None),
        errors.DtypeError,
        "^special_tokens: expected a list of str, got NoneType",
    ),
    (
        lambda: BPETokenizer.train(7, 300),
        errors.DtypeError,
        "^corpus: expected a list of str, got int",
    ),
    (
        lambda: BPETokenizer.from_merges([None]),
        errors.ConfigError,
        r"^merges\[0\]: must be a \(left, right\) pair of str",
    ),
    (
        lambda: load_tokenizer(None),
        errors.DtypeError,
        r"^directory: expected a path \(str or os.PathLike\), got NoneType",
    ),
    (
        lambda: SIMPLE.convert_tokens_to_string(None),
        errors.DtypeError,
        "^tokens: expected a list of str, got NoneType",
    ),
    # Pairs and targets: a second batch pairs up with its first one to one, never unused.
    (
        lambda: SIMPLE("1", ["2"]),
        errors.ConfigError,
        r"^text_pair: must be the same kind as text \(one text, or a list as long as text\); "
        "got a list of 1 for one str",
    ),
    (
        lambda: SIMPLE(["1", "2"], ("3",)),
        errors.ConfigError,
        "^text_pair: must be the same kind as text .*got a list of 1 for a list of 2",
    ),
    (
        lambda: SIMPLE(text_target="1", text_pair="2"),
        errors.ConfigError,
        "^text_pair: goes with text, which is None; pass both or neither",
    ),
    (
        lambda: SIMPLE("1", text_pair_target="3"),
        errors.ConfigError,
        "^text_pair_target: goes with text_target, which is None; pass both or neither",
    ),
    (
        lambda: SIMPLE(["1"], ["2"], text_target=["3"], text_pair_target=["4", "5"]),
        errors.ConfigError,
        "^text_pair_target: must be the same kind as text_target .*a list of 2 for a list of 1",
    ),
    (lambda: SIMPLE("1", 3), errors.DtypeError, "^text_pair: expected str or a list of str"),
    (lambda: SIMPLE(["1"], [3]), errors.DtypeError, r"^text_pair\[0\]: expected str, got int"),
    (lambda: SIMPLE("1", "2 zz"), errors.UnknownTokenError, "^Token 'zz' not in vocab"),
    (
        lambda: SIMPLE(["1", "1 2 3"], ["4", "5"], max_length=3),
        errors.ConfigError,
        r"^truncation: the pair text\[1\], text_pair\[1\] has 4 tokens, more than "
        "max_length=3; pass truncation=True or a larger max_length",
    ),
    (
        lambda: SIMPLE("1 2", "3", truncation="only_first", max_length=1),
        errors.ConfigError,
        r"^truncation: 'only_first' cannot fit the pair text\[0\], text_pair\[0\] into "
        r"max_length=1: text\[0\] would keep no token; pass truncation=True",
    ),
    (
        lambda: SIMPLE(
            text_target="1", text_pair_target="2 3", truncation="only_second", max_length=1
        ),
        errors.ConfigError,
        r"^truncation: 'only_second' cannot fit the pair text_target\[0\], "
        r"text_pair_target\[0\] into max_length=1: text_pair_target\[0\] would keep no token",
    ),
    (
        lambda: SIMPLE("1 2", truncation="only_second", max_length=1),
        errors.ConfigError,
        "^truncation: 'only_second' cuts the second text of a pair; pass text_pair, or "
        "truncation=True",
    ),
    (
        lambda: WRAPPING("1", "2", max_length=3),
        errors.ConfigError,
        r"^max_length: must be at least 4 \(room for the 4 special tokens a pair gets\), got 3",
    ),
    (
        lambda: SIMPLE(["1", "2 3"], ["4", "5"], return_tensors="np"),
        errors.ConfigError,
        "^padding: 'input_ids' rows have different lengths; pass padding=True",
    ),
    (
        lambda: SIMPLE(),
        errors.ConfigError,
        r"^text: pass a str or a list of str \(or text_target\), got None",
    ),
    (
        lambda: SIMPLE(None, text_target=None, padding=True),
        errors.ConfigError,
        "^text: pass a str or a list of str",
    ),
    (
        lambda: SIMPLE(text_target=7),
        errors.DtypeError,
        "^text_target: expected str or a list of str, got int",
    ),
    (
        lambda: SIMPLE(text_target=[7]),
        errors.DtypeError,
        r"^text_target\[0\]: expected str, got int",
    ),
    (lambda: SIMPLE.batch_encode(["1", 2]), errors.DtypeError, r"^texts\[1\]: expected str"),
    (
        lambda: SIMPLE(["1", "2"], text_target=["3", "4 5"], return_tensors="np"),
        errors.ConfigError,
        r"^padding: the rows of text_target have different lengths \(1 to 2\)",
    ),
    (
        lambda: SIMPLE(["1"], text_target=["3 4 5"], max_length=2),
        errors.ConfigError,
        r"^truncation: text_target\[0\] has 3 tokens, more than max_length=2",
    ),
    (
        lambda: SIMPLE(["1", "2"], text_target=["3"]),
        errors.ConfigError,
        r"^text_target: must be the same kind as text \(one text, or a list as long as text\); "
        "got a list of 1 for a list of 2",
    ),
    (
        lambda: SIMPLE("1", text_target=["3"]),
        errors.ConfigError,
        "^text_target: must be the same kind as text .*got a list of 1 for one str",
    ),
    (
        lambda: SIMPLE(["1"], text_target="3"),
        errors.ConfigError,
        "^text_target: must be the same kind as text .*got one str for a list of 1",
    ),
    (
        lambda: SIMPLE(["1"], text_target=["3 zz"]),
        errors.UnknownTokenError,
        "^Token 'zz' not in vocab",
    ),
    (lambda: SIMPLE.encode("1", ["2"]), errors.ConfigError, "^text_pair: must be the same kind"),
    (
        lambda: SIMPLE(["1"], stride=2),
        errors.ConfigError,
        "^stride: only applies to overflowing windows; pass return_overflowing_tokens=True "
        "or stride=0",
    ),
    (
        lambda: WRAPPING(
            ["1 2 3 4"], truncation=True, max_length=4, stride=2, return_overflowing_tokens=True
        ),
        errors.ConfigError,
        r"^stride: must be less than the 2 tokens each window of text\[0\] holds "
        r"\(max_length=4 less the special tokens\), got 2",
    ),
    (
        lambda: SIMPLE(
            "1 2",
            "3 4 5",
            truncation="only_second",
            max_length=4,
            stride=2,
            return_overflowing_tokens=True,
        ),
        errors.ConfigError,
        r"^stride: must be less than the 2 tokens each window of text_pair\[0\] holds "
        r"\(max_length=4 less the special tokens and the other text\), got 2",
    ),
    (
        lambda: SIMPLE(
            "1 2", "3 4 5", truncation=True, max_length=4, return_overflowing_tokens=True
        ),
        errors.ConfigError,
        "^truncation: overflowing windows of a pair cut one of its texts; pass 'only_first' "
        "or 'only_second'",
    ),
    (
        lambda: SIMPLE(
            "1 2", "3 4 5", truncation="only_first", max_length=3, return_overflowing_tokens=True
        ),
        errors.ConfigError,
        r"^truncation: 'only_first' cannot fit the pair text\[0\], text_pair\[0\] into "
        r"max_length=3: text\[0\] would keep no token",
    ),
    (
        lambda: WRAPPING("1 2 3", max_length=4, return_overflowing_tokens=True),
        errors.ConfigError,
        r"^truncation: text\[0\] has 5 tokens, more than max_length=4; pass truncation=True",
    ),
    (
        lambda: SIMPLE(["1"], return_overflowing_tokens="yes"),
        errors.ConfigError,
        "^return_overflowing_tokens: must be True or False, got 'yes'",
    ),
    (lambda: SIMPLE(["1"], stride=-1), errors.ConfigError, "^stride: must be an integer >= 0"),
    # Pre-split words: one list of words or a list of them; word maps only where words are.
    (
        lambda: SIMPLE("1 2", is_split_into_words=True),
        errors.DtypeError,
        "^text: with is_split_into_words, expected a list of words \\(str\\) or a list of such "
        "lists, got str",
    ),
    (
        lambda: SIMPLE([["1"], "2"], is_split_into_words=True),
        errors.DtypeError,
        "^text: with is_split_into_words, expected .*got a list holding list",
    ),
    (
        lambda: SIMPLE([["1", 2]], is_split_into_words=True),
        errors.DtypeError,
        r"^text\[0\]\[1\]: expected str \(a word\), got int",
    ),
    (
        lambda: SIMPLE(["1"], [["2"]], is_split_into_words=True),
        errors.ConfigError,
        "^text_pair: must be the same kind as text .*got a list of 1 for one list of words",
    ),
    (lambda: SIMPLE(["1", "zz"], is_split_into_words=True), errors.UnknownTokenError, "'zz'"),
    (
        lambda: SIMPLE(["1"], is_split_into_words="yes"),
        errors.ConfigError,
        "^is_split_into_words: must be True or False, got 'yes'",
    ),
    (
        lambda: SIMPLE("1 2").word_ids(),
        errors.ConfigError,
        "^word_ids: ferrofix encodings map tokens back to words only for pre-split words; "
        "call the tokenizer with is_split_into_words=True",
    ),
    (
        lambda: SIMPLE(["1"], is_split_into_words=True).sequence_ids(1),
        errors.ConfigError,
        r"^batch_index: must be an integer in \[0, 0\], got 1",
    ),
    (
        lambda: SIMPLE(["1"], return_offsets_mapping=True),
        errors.ConfigError,
        "^return_offsets_mapping: ferrofix tokenizers do not track character offsets",
    ),
    (lambda: SIMPLE(["1"], verbose=0), errors.ConfigError, "^verbose: must be True or False"),
    (
        lambda: SIMPLE(["1"], padding=True, padding_side="up"),
        errors.ConfigError,
        "^padding_side: must be one of 'right', 'left', got 'up'",
    ),
    (
        lambda: SIMPLE.pad([{"input_ids": [7]}], padding_side="center"),
        errors.ConfigError,
        "^padding_side: must be one of 'right', 'left', got 'center'",
    ),
    (lambda: SIMPLE.pad([{"input_ids": [7]}], verbose="no"), errors.ConfigError, "^verbose:"),
    (
        lambda: SIMPLE.batch_decode(np.array([[7, 99]])),
        errors.ConfigError,
        r"^sequences: id 99 at row 0, position 1 is outside \[0, 57\)",
    ),
    (
        lambda: SIMPLE.batch_decode([[7], [8, -1]]),
        errors.ConfigError,
        r"^sequences: id -1 at row 1, position 1 is outside \[0, 57\)",
    ),
    (
        lambda: SIMPLE.batch_decode([[7], (8, 99)]),
        errors.ConfigError,
        r"^sequences: id 99 at row 1, position 1 is outside \[0, 57\)",
    ),
    (
        lambda: SIMPLE.batch_decode([[7], [8, True]]),
        errors.DtypeError,
        r"^sequences\[1\]\[1\]: must be an integer, got a bool",
    ),
    (lambda: SIMPLE.encode("1 nope"), errors.UnknownTokenError, "Token 'nope' not in vocab"),
    (lambda: SIMPLE(["1", "nope"]), errors.UnknownTokenError, "Token 'nope' not in vocab"),
    (lambda: SIMPLE.convert_tokens_to_ids("nope"), errors.UnknownTokenError, "not in vocab"),
    (lambda: SIMPLE.decode([0, 57]), errors.ConfigError, "^token_ids: id 57 at position 1 is"),
    (
        lambda: SIMPLE.decode([-1]),
        errors.ConfigError,
        r"^token_ids: id -1 at position 0 is outside \[0, 57\)",
    ),
    (lambda: SIMPLE.decode([1.5]), errors.DtypeError, "^token_ids: expected integer token ids"),
    (
        lambda: fixture_tokenizer("wordpiece"),
        errors.ConfigError,
        "kind: must be one of 'simple', 'char', 'byte', 'bpe', got 'wordpiece'",
    ),
    # numpy reads [8, True] as [8, 1]: a bool among ids is refused by position.
    (
        lambda: SIMPLE.decode([8, True]),
        errors.DtypeError,
        r"^token_ids\[1\]: must be an integer, got a bool",
    ),
    (
        lambda: SIMPLE.convert_ids_to_tokens((np.True_, 8)),
        errors.DtypeError,
        r"^ids\[0\]: must be an integer, got a bool",
    ),
    (
        lambda: SIMPLE.pad([{"input_ids": [7, 8]}, {"input_ids": [9, True]}], padding=True),
        errors.DtypeError,
        r"input_ids\[1\]\[1\]: must be an integer, got a bool",
    ),
    (
        lambda: SIMPLE.pad([{"input_ids": np.array([7, 8])}, {"input_ids": [False, 9]}]),
        errors.DtypeError,
        r"input_ids\[1\]\[0\]: must be an integer, got a bool",
    ),
    (lambda: SIMPLE.decode([[1]]), errors.ShapeError, r"^token_ids: expected shape \(L,\)"),
    (lambda: SIMPLE.encode(3), errors.DtypeError, "text: expected str, got int"),
    (lambda: SIMPLE(["1", 2]), errors.DtypeError, r"text\[1\]: expected str, got int"),
    (
        lambda: SIMPLE.batch_encode(["1", "2", "\ud800"]),
        errors.ConfigError,
        "texts: text 2 is not valid Unicode",
    ),
    *[
        (call, errors.ConfigError, f"{arg}: '{bad}' is not valid Unicode .*position {at}")
        for call, arg, bad, at in [
            (lambda: SIMPLE.encode("1 \ud800"), "text", r"1 \\ud800", 2),
            (lambda: SIMPLE.encode("\ud800", return_tensors="np"), "text", r"\\ud800", 0),
            (lambda: SIMPLE.encode_array("\udfff 1"), "text", r"\\udfff 1", 0),
            (lambda: SIMPLE.tokenize("1\ud800"), "text", r"1\\ud800", 1),
            (lambda: ByteTokenizer().encode("\ud800"), "text", r"\\ud800", 0),
            (lambda: SIMPLE.convert_tokens_to_ids(["\ud800"]), "token", r"\\ud800", 0),
            (lambda: SimpleTokenizer(["1", "\ud800"]), "vocab", r"\\ud800", 0),
            (lambda: CharTokenizer(["a", "\ud800"]), "alphabet", r"\\ud800", 0),
            (lambda: BPETokenizer.from_merges([("a", "\ud800")]), "merges", r"\\ud800", 0),
            (
                lambda: ByteTokenizer(special_tokens=["[PAD]", "x\udc00"]),
                "special_tokens",
                r"x\\udc00",
                1,
            ),
        ]
    ],
    (lambda: SIMPLE(3), errors.DtypeError, "text: expected str or a list of str, got int"),
    (lambda: SIMPLE.batch_encode("1 2"), errors.DtypeError, "texts: expected a list of str"),
    (
        lambda: SIMPLE("1", max_length=0),
        errors.ConfigError,
        r"max_length: must be an integer in \[1, 2\*\*63 - 1\] or None, got 0",
    ),
    (lambda: SIMPLE.batch_encode(["1"], max_length=-2), errors.ConfigError, "max_length: must be"),
    (
        lambda: SIMPLE("1", padding="longer"),
        errors.ConfigError,
        "padding: must be one of False, True, 'longest', 'max_length', 'do_not_pad', got 'longer'",
    ),
    (
        lambda: SIMPLE("1", return_tensors="tf"),
        errors.ConfigError,
        "return_tensors: must be one of None, 'np', 'pt', got 'tf'",
    ),
    (lambda: SIMPLE("1", truncation="sideways"), errors.ConfigError, "truncation: must be one of"),
    (
        lambda: SIMPLE("1", padding="max_length"),
        errors.ConfigError,
        "max_length: padding='max_length' needs max_length",
    ),
    (
        lambda: SIMPLE("1 2 3", max_length=2),
        errors.ConfigError,
        r"truncation: text\[0\] has 3 tokens, more than max_length=2; pass truncation=True",
    ),
    (
        lambda: SIMPLE.batch_encode(["1", "1 2 3"], max_length=2),
        errors.ConfigError,
        r"truncation: texts\[1\] has 3 tokens",
    ),
    (
        lambda: SIMPLE(["1", "1 2"], return_tensors="np"),
        errors.ConfigError,
        r"padding: the rows of text have different lengths \(1 to 2\)",
    ),
    (
        lambda: SIMPLE("1", padding=True, truncation=True, max_length=5, pad_to_multiple_of=4),
        errors.ConfigError,
        "pad_to_multiple_of: truncation to max_length=5 and padding to a multiple of 4 disagree",
    ),
    (
        lambda: SIMPLE("1", pad_to_multiple_of=0, padding=True),
        errors.ConfigError,
        r"pad_to_multiple_of: must be an integer in \[1, 2\*\*63 - 1\] or None, got 0",
    ),
    (
        lambda: SimpleTokenizer(WORDS, add_bos=True, add_eos=True)(
            "1 2", truncation=True, max_length=1
        ),
        errors.ConfigError,
        "max_length: must be at least 2",
    ),
    (
        lambda: SIMPLE.pad([{"input_ids": [1, 2, 3]}], padding="max_length", max_length=2),
        errors.ConfigError,
        "encoded_inputs: row 0 has 3 tokens, more than max_length=2; pad never truncates",
    ),
    (
        lambda: SIMPLE.pad([{"labels": [1]}]),
        errors.ConfigError,
        "encoded_inputs: must have 'input_ids'",
    ),
    (
        lambda: SIMPLE.pad([{"input_ids": [1]}, {"input_ids": [1], "x": 1}]),
        errors.ConfigError,
        r"encoded_inputs\[1\]: has keys",
    ),
    (lambda: SIMPLE.pad("text"), errors.DtypeError, "encoded_inputs: expected a list of dicts"),
    (
        lambda: SimpleTokenizer(["a", "a"]),
        errors.ConfigError,
        "vocab: entry 'a' at index 1 is a duplicate",
    ),
    (
        lambda: SimpleTokenizer(["[MASK]"]),
        errors.ConfigError,
        r"vocab: entry '\[MASK\]' at index 0 is a special token",
    ),
    (
        lambda: SimpleTokenizer(["a b"]),
        errors.ConfigError,
        'vocab: entry "a b" at index 0 is empty or contains whitespace',
    ),
    (lambda: SimpleTokenizer("abc"), errors.DtypeError, "vocab: expected a list of str, got str"),
    (
        lambda: SimpleTokenizer(["a"], model_max_length=0),
        errors.ConfigError,
        r"model_max_length: must be an integer >= 1, got 0",
    ),
    (
        lambda: SimpleTokenizer(["a"], model_max_length=2**64),
        errors.ConfigError,
        r"model_max_length: must be an integer in \[1, 2\*\*63 - 1\] or None, "
        "got 18446744073709551616",
    ),
    (
        lambda: SimpleTokenizer(["a"], bogus=1),
        errors.ConfigError,
        "bogus: not an option of SimpleTokenizer; the options are unk_fallback, add_bos, "
        "add_eos, special_tokens, padding_side, truncation_side, model_max_length",
    ),
    (
        lambda: BPETokenizer.train(["ab"], 300, unk_fallback=True),
        errors.ConfigError,
        "unk_fallback: not an option of BPETokenizer; the options are add_bos, add_eos, "
        "special_tokens, padding_side",
    ),
    (
        lambda: CharTokenizer("ab", add_bos="yes"),
        errors.ConfigError,
        "add_bos: must be True or False, got 'yes'",
    ),
    (
        lambda: SimpleTokenizer(["a"], unk_fallback=1),
        errors.ConfigError,
        "unk_fallback: must be True or False, got 1",
    ),
    (
        lambda: SimpleTokenizer(None),
        errors.DtypeError,
        "vocab: expected a list of str, got NoneType",
    ),
    (
        lambda: CharTokenizer(5),
        errors.DtypeError,
        "alphabet: expected a str or a list of characters, got int",
    ),
    (lambda: SimpleTokenizer([1]), errors.DtypeError, r"vocab\[0\]: expected str, got int"),
    (
        lambda: SimpleTokenizer(WORDS, special_tokens=["[PAD]", "[PAD]"]),
        errors.ConfigError,
        "special_tokens: duplicate entry '\\[PAD\\]' at index 1",
    ),
    (
        lambda: SimpleTokenizer(WORDS, special_tokens=["[PAD]"], add_bos=True),
        errors.ConfigError,
        r"add_bos: needs a BOS special token such as \[BOS\]",
    ),
    (
        lambda: SimpleTokenizer(WORDS, special_tokens=[], unk_fallback=True),
        errors.ConfigError,
        "unk_fallback: needs an UNK special token",
    ),
    (
        lambda: SimpleTokenizer(WORDS, padding_side="up"),
        errors.ConfigError,
        "padding_side: must be one of 'right', 'left', got 'up'",
    ),
    (
        lambda: SimpleTokenizer.for_numbers(-1),
        errors.ConfigError,
        "n: must be an integer >= 0, got -1",
    ),
    (
        lambda: CharTokenizer(["ab"]),
        errors.ConfigError,
        r"alphabet\[0\]: must be a single character, got 'ab'",
    ),
    (
        lambda: CharTokenizer("aba"),
        errors.ConfigError,
        "alphabet: entry 'a' at index 2 is a duplicate",
    ),
    (lambda: CharTokenizer("ab").encode("abc"), errors.UnknownTokenError, "Token 'c' not in vocab"),
    (
        lambda: BPETokenizer.train(["x"], 100),
        errors.ConfigError,
        r"vocab_size: must be at least 263 \(the 7 special tokens and 256 bytes\), got 100",
    ),
    (
        lambda: BPETokenizer.train(["x"], 300, min_frequency=0),
        errors.ConfigError,
        "min_frequency: must be an integer >= 1, got 0",
    ),
    (
        lambda: BPETokenizer.train([1], 300),
        errors.DtypeError,
        r"corpus\[0\]: expected str, got int",
    ),
    (
        lambda: BPETokenizer.train(["ab", "\ud800"], 300),
        errors.ConfigError,
        "corpus: text 1 is not valid Unicode",
    ),
    (
        lambda: BPETokenizer.from_merges([("a", "b"), ("ab", "zz")]),
        errors.ConfigError,
        'merges: merge 1: "zz" is neither a byte nor made by an earlier merge',
    ),
    (
        lambda: BPETokenizer.from_merges([("€", "b")]),
        errors.ConfigError,
        "merges: merge 0: \"€\" has '€', which is not a byte-level character",
    ),
    (
        lambda: BPETokenizer.from_merges(["a b c"]),
        errors.ConfigError,
        r"merges\[0\]: must be a \(left, right\) pair",
    ),
    (
        lambda: ByteTokenizer(special_tokens=["a"]),
        errors.ConfigError,
        "special_tokens: entry 'a' at index 0 is also the byte-level token of byte 0x61",
    ),
    (
        lambda: load_tokenizer("/nonexistent/dir"),
        errors.ConfigError,
        "has no tokenizer_config.json",
    ),
    (lambda: Tokenizer(), TypeError, "use SimpleTokenizer, CharTokenizer"),
    (
        lambda: SIMPLE.batch_decode(np.array([[1.5]])),
        errors.DtypeError,
        "sequences: expected integer ids, got dtype float64",
    ),
    (lambda: SIMPLE.tokenize(3), errors.DtypeError, "text: expected str, got int"),
    (lambda: SIMPLE.encode_array(None), errors.DtypeError, "text: expected str, got NoneType"),
    (
        lambda: SIMPLE.encode("1", return_tensors="tf"),
        errors.ConfigError,
        "return_tensors: must be",
    ),
    (
        lambda: SIMPLE.convert_ids_to_tokens([99]),
        errors.ConfigError,
        r"^ids: id 99 at position 0 is outside \[0, 57\)",
    ),
    (lambda: SIMPLE._convert_token_to_id(3), errors.DtypeError, "token: expected str, got int"),
    (
        lambda: SIMPLE.pad([{"input_ids": [1.5]}]),
        errors.DtypeError,
        r"input_ids\[0\]: expected integer token ids",
    ),
    (
        lambda: BPETokenizer.train(["x"], "big"),
        errors.ConfigError,
        "vocab_size: must be an integer >= 0, got 'big'",
    ),
    # A batch padded past any machine's memory is refused before it is allocated or written.
    (
        lambda: SIMPLE.batch_encode(["1"], max_length=2**40),
        errors.ConfigError,
        r"padding: 2 output arrays of shape \[1, 1099511627776\] would need 16384.0 GiB, "
        "more than this machine's memory",
    ),
    (
        lambda: SIMPLE(["1"], padding="longest", pad_to_multiple_of=2**62),
        errors.ConfigError,
        r"padding: 2 output arrays of shape \[1, 4611686018427387904\] would need more than "
        r"2\*\*64 bytes",
    ),
    (
        lambda: SIMPLE.pad([{"input_ids": [7]}], padding="max_length", max_length=2**40),
        errors.ConfigError,
        r"padding: 2 output arrays of shape \[1, 1099511627776\] would need 16384.0 GiB, "
        "more than this machine's memory",
    ),
    (
        lambda: SIMPLE(["1"], padding="max_length", max_length=2**70),
        errors.ConfigError,
        r"max_length: must be an integer in \[1, 2\*\*63 - 1\] or None, got 1180591620717411303424",
    ),
    (
        lambda: SIMPLE.decode([[1], [2, 3]]),
        errors.ShapeError,
        "^token_ids: expected a flat sequence of ids, got nested lists",
    ),
    (
        lambda: SIMPLE.decode([2**64]),
        errors.DtypeError,
        "^token_ids: expected integer token ids, got ids past int64",
    ),
    (
        lambda: SIMPLE.decode(np.array([2**63], np.uint64)),
        errors.ConfigError,
        "^token_ids: id 9223372036854775808 is past int64, so no token has it",
    ),
    (
        lambda: SIMPLE.batch_decode([[7], [2**64]]),
        errors.DtypeError,
        r"^sequences\[1\]: expected integer token ids, got ids past int64",
    ),
    (
        lambda: SIMPLE.batch_decode(5),
        errors.DtypeError,
        "sequences: expected a list of id sequences or a 2-D array, got int",
    ),
    (
        lambda: SIMPLE.batch_decode(torch.tensor(3)),
        errors.DtypeError,
        "sequences: expected a list of id sequences or a 2-D array, got int",
    ),
    (
        lambda: SimpleTokenizer.for_numbers(2**40),
        errors.ConfigError,
        r"n: an output array of shape \[1099511627776\] would need 102400.0 GiB",
    ),
    # pad converts collators' lists of ints in one go; a bad row is still named.
    (
        lambda: SIMPLE.pad([{"input_ids": [7, 8]}, {"input_ids": [7, [8]]}]),
        errors.ShapeError,
        r"input_ids\[1\]: expected a flat sequence of ids, got nested lists",
    ),
    (
        lambda: SIMPLE.pad([{"input_ids": [7]}, {"input_ids": [2**64]}]),
        errors.DtypeError,
        r"input_ids\[1\]: expected integer token ids, got ids past int64",
    ),
    (
        lambda: SIMPLE.pad([{"input_ids": [7, 8], "attention_mask": [1]}]),
        errors.ConfigError,
        r"encoded_inputs: attention_mask\[0\] has length 1, input_ids\[0\] has 2",
    ),
    (
        lambda: SIMPLE.decode([7], clean_up_tokenization_spaces="yes"),
        errors.ConfigError,
        "clean_up_tokenization_spaces: must be True, False or None, got 'yes'",
    ),
    (
        lambda: SimpleTokenizer(["a"], clean_up_tokenization_spaces=1),
        errors.ConfigError,
        "clean_up_tokenization_spaces: must be True or False, got 1",
    ),
    (
        lambda: SimpleTokenizer(["a"], cleanup=True),
        errors.ConfigError,
        "cleanup: not an option of SimpleTokenizer; the options are .*"
        "model_max_length, clean_up_tokenization_spaces",
    ),
    (
        lambda: SIMPLE.num_special_tokens_to_add(pair=1),
        errors.ConfigError,
        "^pair: must be True or False, got 1",
    ),
    (
        lambda: SIMPLE.convert_tokens_to_string(["1", "nope"]),
        errors.UnknownTokenError,
        "Token 'nope' not in vocab",
    ),
    (
        lambda: SIMPLE.get_special_tokens_mask([7], [8], already_has_special_tokens=True),
        errors.ConfigError,
        r"^token_ids_1: a finished sequence \(already_has_special_tokens=True\) is one list",
    ),
    (
        lambda: SIMPLE.get_special_tokens_mask([7], [[8], [9, 10]]),
        errors.ShapeError,
        "^token_ids_1: expected a flat sequence of ids",
    ),
    (
        lambda: SIMPLE.get_special_tokens_mask("7 8", already_has_special_tokens=True),
        errors.DtypeError,
        "token_ids_0: expected integer token ids, got dtype <U3",
    ),
    (
        lambda: SIMPLE.get_special_tokens_mask([[7], [8, 9]]),
        errors.ShapeError,
        "token_ids_0: expected a flat sequence of ids, got nested lists",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_INPUT)
def test_bad_input(call, error, message: str) -> None:
    with pytest.raises(error, match=message):
        call()


# --- the contract ---------------------------------------------------------------------------


class TestOurTokenizersMeetTheContract(TokenizerContract):
    @pytest.fixture(params=ALL_KINDS)
    def tokenizer(self, request, make_tokenizer):
        return make_tokenizer(request.param, add_bos=True, add_eos=True)


class TestHFTokenizerMeetsTheContract(TokenizerContract):
    @pytest.fixture
    def tokenizer(self, bpe_tokenizer, tmp_path):
        transformers = pytest.importorskip("transformers")
        bpe_tokenizer.save_pretrained(tmp_path)
        return transformers.AutoTokenizer.from_pretrained(tmp_path)


BROKEN_CONTRACT = """
from ferrofix.mixins import TokenizerContract
from ferrofix.tokenizers import SimpleTokenizer
import pytest


class Lossy(SimpleTokenizer):
    def decode(self, ids, skip_special_tokens=False):
        return " ".join(super().decode(ids, skip_special_tokens).split()[:-1])  # drops a word


class TestLossy(TokenizerContract):
    @pytest.fixture
    def tokenizer(self):
        return Lossy(["a", "b"])
"""


def test_the_contract_names_the_fixture_when_it_fails(pytester) -> None:
    pytester.makepyfile(BROKEN_CONTRACT)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*tokenizer fixture: decode(encode(*)) gave *"])
