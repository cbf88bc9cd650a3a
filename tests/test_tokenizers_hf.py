"""Hugging Face parity: the exported tokenizer.json gives our ids in ``tokenizers`` and
``transformers``, and ``__call__``/``pad`` return what ``PreTrainedTokenizerFast`` returns."""

from __future__ import annotations

import itertools
import os
import random
import warnings

import numpy as np
import pytest
import torch
from ferrofix import errors
from ferrofix.tokenizers import CHAR_FIXTURE_ALPHABET, fixture_corpus

tokenizers = pytest.importorskip("tokenizers")
transformers = pytest.importorskip("transformers")

KINDS = ["simple", "char", "byte", "bpe"]
# transformers 5 ignores clean_up_tokenization_spaces=True for BPE-model tokenizers (it
# would corrupt exact byte-level text), as ours do; transformers 4 still applies it.
HF_CLEANS_UP_BPE = int(transformers.__version__.split(".")[0]) < 5
# Mixed scripts, whitespace runs, contractions, digits, emoji and special tokens mid-word.
BYTE_ALPHABET = "abcdefgh  \n\t'sdtmlrve.,!?0123456789éü€中文😀\u00a0\u2028[MASK]"


def random_texts(kind: str, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    if kind == "simple":
        words = [*map(str, range(50)), "[MASK]", "[SEP]"]
        return [" ".join(rng.choices(words, k=rng.randrange(0, 25))) for _ in range(n)]
    if kind == "char":
        return [
            "".join(rng.choices(CHAR_FIXTURE_ALPHABET, k=rng.randrange(0, 40))) for _ in range(n)
        ]
    corpus = fixture_corpus()
    return [
        "".join(rng.choices(BYTE_ALPHABET, k=rng.randrange(0, 40)))
        if i % 2
        else " ".join(rng.choices(corpus, k=2))[: rng.randrange(1, 200)]
        for i in range(n)
    ]


@pytest.fixture(params=KINDS)
def exported(request, make_tokenizer, tmp_path):
    """(ours, directory) for each kind, with BOS/EOS on for the word model."""
    kind = request.param
    options = {"add_bos": True, "add_eos": True} if kind == "simple" else {}
    ours = make_tokenizer(kind, **options)
    ours.save_pretrained(tmp_path)
    return ours, tmp_path


def test_tokenizer_json_gives_identical_ids_in_hf_tokenizers(exported) -> None:
    ours, directory = exported
    hf = tokenizers.Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    texts = random_texts(ours.kind, 1000)
    for text in texts:
        assert hf.encode(text).ids == ours.encode(text), text
    assert [e.ids for e in hf.encode_batch(texts[:50])] == [ours.encode(t) for t in texts[:50]]
    assert hf.get_vocab_size() == ours.vocab_size


def test_tokenizer_json_loads_in_transformers_with_identical_ids_and_text(exported) -> None:
    ours, directory = exported
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(directory, "tokenizer.json")
    )
    auto = transformers.AutoTokenizer.from_pretrained(directory)
    texts = random_texts(ours.kind, 200, seed=1)
    for text in texts:
        ids = ours.encode(text)
        assert fast.encode(text) == ids
        assert auto.encode(text) == ids
        assert auto.decode(ids) == ours.decode(ids)
        assert auto.decode(ids, skip_special_tokens=True) == ours.decode(
            ids, skip_special_tokens=True
        )
        assert auto.convert_ids_to_tokens(ids) == ours.convert_ids_to_tokens(ids)
    assert auto.pad_token_id == ours.pad_token_id
    assert auto.mask_token_id == ours.mask_token_id


def _with_hf(make_tokenizer, directory, kind, **options):
    """(ours, HF's loading of its export): a ``make_tokenizer(kind, **options)`` saved to
    ``directory`` and read back by ``transformers.AutoTokenizer``."""
    ours = make_tokenizer(kind, **options)
    ours.save_pretrained(directory)
    return ours, transformers.AutoTokenizer.from_pretrained(directory)


def _lists(encoding) -> dict:
    out = {}
    for key in ("input_ids", "attention_mask", "labels"):
        if key in encoding:
            value = encoding[key]
            out[key] = value.tolist() if hasattr(value, "tolist") else value
    return out


def _outcome(call):
    """(result, None) or (None, the ConfigError ferrofix raised)."""
    try:
        return call(), None
    except errors.ConfigError as error:
        return None, error


def _ours_is_stricter(error: Exception, padding, truncation, max_length) -> bool:
    """The combinations where ferrofix raises on purpose and HF silently does something else."""
    message = str(error)
    return (
        (padding == "max_length" and max_length is None and "needs max_length" in message)
        or ("pass truncation=True" in message and not truncation)
        or "different lengths" in message
        # HF leaves a pair whole when max_length leaves no room beside its special tokens.
        or "special tokens a pair gets" in message
    )


def _both_results(ours_call, hf_call, kwargs, hf_errors=(ValueError,)):
    """``(ours, HF's)`` results of the same call, or None where they differ on purpose: HF
    raised and so did ferrofix (a ConfigError), or ferrofix refused what HF silently does
    otherwise (``_ours_is_stricter``)."""
    with warnings.catch_warnings():  # HF warns about ignored max_length; we compare
        warnings.simplefilter("ignore")
        try:
            expected = hf_call()
        except hf_errors:
            with pytest.raises(errors.ConfigError):
                ours_call()
            return None
    got, error = _outcome(ours_call)
    if error is not None:
        stricter = _ours_is_stricter(
            error, kwargs["padding"], kwargs["truncation"], kwargs.get("max_length")
        )
        assert stricter, (kwargs, error)
        return None
    return got, expected


CALL_GRID = list(
    itertools.product(
        [False, True, "longest", "max_length"],  # padding
        [False, True],  # truncation
        [None, 5, 12],  # max_length
        [None, 4],  # pad_to_multiple_of
        [None, "np", "pt"],  # return_tensors
    )
)


@pytest.mark.parametrize("side", ["right", "left"])
def test_call_matches_pretrained_tokenizer_fast(make_tokenizer, tmp_path, side: str) -> None:
    ours, hf = _with_hf(
        make_tokenizer, tmp_path, "simple", add_bos=True, add_eos=True, padding_side=side
    )
    assert hf.padding_side == side
    batches = [["1 2 3", "4", "5 6 7 8 9 10 11 12 13 14"], ["7 8", "[MASK] 9"], "1 2 3"]
    compared = 0
    for texts, (padding, truncation, max_length, multiple, tensors) in itertools.product(
        batches, CALL_GRID
    ):
        kwargs = dict(
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            pad_to_multiple_of=multiple,
            return_tensors=tensors,
            return_special_tokens_mask=True,
            return_token_type_ids=True,
            return_length=True,
        )
        results = _both_results(
            lambda: ours(texts, **kwargs),  # noqa: B023
            lambda: hf(texts, **kwargs),  # noqa: B023
            kwargs,
        )
        if results is None:
            continue
        got, expected = results
        assert _lists(got) == _lists(expected), (texts, kwargs)
        if tensors == "pt":
            assert got["input_ids"].dtype == expected["input_ids"].dtype == torch.int64
        compared += 1
    assert compared > 100


@pytest.mark.parametrize("truncation_side", ["right", "left"])
@pytest.mark.parametrize("kind", KINDS)
def test_call_matches_hf_for_every_kind_with_bos_eos_and_either_truncation_side(
    make_tokenizer, tmp_path, kind: str, truncation_side: str
) -> None:
    """Seeded random option sets on random texts of each model, BOS and EOS on (truncation
    must keep them and cut the content from the chosen side)."""
    ours, hf = _with_hf(
        make_tokenizer, tmp_path, kind, add_bos=True, add_eos=True, truncation_side=truncation_side
    )
    assert hf.truncation_side == truncation_side
    rng = random.Random(f"{kind}-{truncation_side}")
    compared = 0
    for trial in range(40):
        texts = random_texts(kind, rng.randrange(1, 5), seed=trial)
        kwargs = dict(
            padding=rng.choice([False, True, "max_length"]),
            truncation=rng.choice([False, True, "longest_first"]),
            max_length=rng.choice([None, 2, 3, 7, 30]),
            pad_to_multiple_of=rng.choice([None, 3, 8]),
            add_special_tokens=rng.choice([True, False]),
        )
        # HF raises e.g. on a truncation length that is not a padding multiple.
        results = _both_results(
            lambda: ours(texts, **kwargs),  # noqa: B023
            lambda: hf(texts, **kwargs),  # noqa: B023
            kwargs | {"max_length": None},
        )
        if results is None:
            continue
        got, expected = results
        assert _lists(got) == _lists(expected), (texts, kwargs)
        compared += 1
    assert compared > 15, compared


def _paired_texts(kind: str, rng: random.Random, trial: int) -> tuple:
    """Two random batches of 1-3 texts that pair up one to one, or (30% of the time) one
    text each."""
    n = rng.randrange(1, 4)
    firsts = random_texts(kind, n, seed=trial)
    seconds = random_texts(kind, n, seed=1000 + trial)
    return (firsts[0], seconds[0]) if rng.random() < 0.3 else (firsts, seconds)


@pytest.mark.parametrize("kind", KINDS)
def test_text_target_matches_hf_for_every_kind(make_tokenizer, tmp_path, kind: str) -> None:
    """Seq2seq calls (sources with text_target, or targets alone) under seeded random
    options: the same input_ids, attention_mask and labels as HF."""
    ours, hf = _with_hf(make_tokenizer, tmp_path, kind, add_bos=True, add_eos=True)
    rng = random.Random(f"target-{kind}")
    compared = {"both": 0, "targets only": 0}
    for trial in range(60):
        texts, targets = _paired_texts(kind, rng, trial)
        call = rng.choice(list(compared))
        inputs = {"text_target": targets} | ({"text": texts} if call == "both" else {})
        kwargs = dict(
            padding=rng.choice([False, True, "max_length"]),
            truncation=rng.choice([False, True]),
            max_length=rng.choice([None, 3, 30]),
            return_tensors=rng.choice([None, "np", "pt"]),
        )
        results = _both_results(
            lambda: ours(**inputs, **kwargs),  # noqa: B023
            lambda: hf(**inputs, **kwargs),  # noqa: B023
            kwargs | {"max_length": None},
        )
        if results is None:
            continue
        got, expected = results
        assert sorted(got) == sorted(expected), (inputs, kwargs)
        assert _lists(got) == _lists(expected), (inputs, kwargs)
        compared[call] += 1
    assert min(compared.values()) > 8, compared


PAIR_KEYS = ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask", "length")


def _all_lists(encoding) -> dict:
    return {
        key: value.tolist() if hasattr(value, "tolist") else value
        for key, value in encoding.items()
    }


@pytest.mark.parametrize("specials", ["bos and eos", "bos", "none"])
@pytest.mark.parametrize("kind", KINDS)
def test_text_pairs_match_hf_for_every_kind(make_tokenizer, tmp_path, kind, specials) -> None:
    """tokenizer(text, text_pair) under seeded random options, truncation strategies and
    sides included: every key HF returns (ids, token types, masks, lengths) is the same."""
    bos, eos = specials != "none", specials == "bos and eos"
    ours, hf = _with_hf(make_tokenizer, tmp_path, kind, add_bos=bos, add_eos=eos)
    rng = random.Random(f"pairs-{kind}-{specials}")
    compared = 0
    for trial in range(100):
        firsts, seconds = _paired_texts(kind, rng, trial)
        if seconds == "":  # HF drops a lone empty text_pair (not one in a batch); ours
            continue  # keeps it, as tokenizers and HF batches do: see test_tokenizers
        side = rng.choice(["right", "left"])
        ours.truncation_side = hf.truncation_side = side
        kwargs = dict(
            padding=rng.choice([False, True, "max_length"]),
            truncation=rng.choice([True, "longest_first", "only_first", "only_second"]),
            max_length=rng.choice([None, 3, 5, 8, 13, 40]),
            pad_to_multiple_of=rng.choice([None, None, 4]),
            padding_side=rng.choice(["right", "left"]),
            return_tensors=rng.choice([None, "np", "pt"]),
            add_special_tokens=rng.random() < 0.8,
            return_token_type_ids=True,
            return_special_tokens_mask=rng.random() < 0.5,
            return_length=rng.random() < 0.3,
        )
        results = _both_results(
            lambda: ours(firsts, seconds, **kwargs),  # noqa: B023
            lambda: hf(firsts, seconds, **kwargs),  # noqa: B023
            kwargs | {"max_length": None},
            hf_errors=Exception,  # tokenizers' truncation errors are plain Exceptions
        )
        if results is None:
            continue
        got, expected = results
        assert list(got) == [key for key in PAIR_KEYS if key in expected], (kwargs, list(got))
        assert _all_lists(got) == _all_lists(expected), (firsts, seconds, kwargs)
        if kwargs["return_tensors"] == "pt":
            assert got["input_ids"].dtype == expected["input_ids"].dtype == torch.int64
        compared += 1
    assert compared > 30, compared


def _window_sizes(ours, firsts, seconds, kwargs):
    """The size of the windows each text of the call that is cut would be cut into."""
    firsts = [firsts] if isinstance(firsts, str) else firsts
    seconds = (
        [None] * len(firsts)
        if seconds is None
        else ([seconds] if isinstance(seconds, str) else seconds)
    )
    special = ours.num_special_tokens_to_add(pair=seconds[0] is not None)
    special *= kwargs["add_special_tokens"]
    sizes = []
    for first, second in zip(firsts, seconds, strict=True):
        n1 = len(ours.encode(first, add_special_tokens=False))
        n2 = 0 if second is None else len(ours.encode(second, add_special_tokens=False))
        if n1 + n2 + special <= kwargs["max_length"]:
            continue
        other = {"only_first": n2, "only_second": n1}.get(kwargs["truncation"], 0)
        sizes.append(kwargs["max_length"] - special - other)
    return sizes


@pytest.mark.parametrize("pairs", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_overflowing_windows_match_hf(make_tokenizer, tmp_path, kind, pairs) -> None:
    """return_overflowing_tokens with a stride, single texts and pairs (only_first and
    only_second), either truncation side: the same rows and overflow_to_sample_mapping."""
    ours, hf = _with_hf(make_tokenizer, tmp_path, kind, add_bos=True, add_eos=True)
    rng = random.Random(f"windows-{kind}-{pairs}")
    compared = 0
    for trial in range(120):
        firsts, seconds = _paired_texts(kind, rng, trial)
        if not pairs:
            seconds = None
        elif seconds == "":  # HF drops a lone empty text_pair (see the pairs test)
            continue
        ours.truncation_side = hf.truncation_side = rng.choice(["right", "left"])
        kwargs = dict(
            truncation=rng.choice(["only_first", "only_second"]) if pairs else True,
            max_length=rng.randrange(8, 120 if pairs else 60),  # room for the other text
            stride=rng.randrange(0, 4),
            return_overflowing_tokens=True,
            padding=rng.choice([False, True]),
            return_tensors=rng.choice([None, "np", "pt"]),
            add_special_tokens=rng.random() < 0.8,
            return_special_tokens_mask=rng.random() < 0.5,
            return_length=rng.random() < 0.3,
        )
        args = (firsts,) if seconds is None else (firsts, seconds)
        if any(size <= kwargs["stride"] for size in _window_sizes(ours, firsts, seconds, kwargs)):
            # HF panics on a stride as long as a window, or fails when none fits; ours
            # names the stride or the text.
            with pytest.raises(errors.ConfigError, match=r"^(stride|truncation): "):
                ours(*args, **kwargs)
            continue
        results = _both_results(
            lambda: ours(*args, **kwargs),  # noqa: B023
            lambda: hf(*args, **kwargs),  # noqa: B023
            kwargs,
            hf_errors=Exception,  # tokenizers' truncation errors are plain Exceptions
        )
        if results is None:
            continue
        got, expected = results
        assert list(got) == list(expected), (kwargs, list(got), list(expected))
        assert _all_lists(got) == _all_lists(expected), (args, kwargs)
        compared += 1
    assert compared > 15, compared


def _random_words(kind: str, rng: random.Random, trial: int) -> list[str]:
    """A pre-split text: pieces of a random text, some with inner spaces (whole words of
    the word model, which has no token for a piece of one)."""
    text = random_texts(kind, 1, seed=3000 + trial)[0]
    if kind == "simple":
        tokens = text.split()
        cuts = sorted({0, len(tokens), *rng.sample(range(len(tokens) + 1), min(3, len(tokens)))})
        return [" ".join(tokens[a:b]) for a, b in itertools.pairwise(cuts)]
    cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randrange(1, 8))))
    return [text[a:b] for a, b in itertools.pairwise(cuts) if text[a:b].strip()]


@pytest.mark.parametrize("kind", KINDS)
def test_pre_split_words_match_hf(make_tokenizer, tmp_path, kind) -> None:
    """is_split_into_words: each word encoded on its own, under seeded random options
    (pairs, truncation, padding, windows); the same keys, word_ids and sequence_ids."""
    ours, hf = _with_hf(make_tokenizer, tmp_path, kind, add_bos=True, add_eos=True)
    rng = random.Random(f"split-{kind}")
    compared = 0
    for trial in range(80):
        n = rng.randrange(1, 4)
        firsts = [_random_words(kind, rng, 10 * trial + k) for k in range(n)]
        seconds = [_random_words(kind, rng, 10 * trial + 5 + k) for k in range(n)]
        if rng.random() < 0.3:
            firsts, seconds = firsts[0], seconds[0]
        args = (firsts, seconds) if rng.random() < 0.4 else (firsts,)
        if args[1:] == ([],):  # HF drops a lone empty text_pair, as in the pairs test
            continue
        kwargs = dict(
            is_split_into_words=True,
            padding=rng.choice([False, True]),
            padding_side=rng.choice(["right", "left"]),
            truncation=rng.choice([False, True, "only_first"]),
            max_length=rng.choice([None, 12, 40]),
            return_tensors=rng.choice([None, "np", "pt"]),
            return_token_type_ids=True,
        )
        results = _both_results(
            lambda: ours(*args, **kwargs),  # noqa: B023
            lambda: hf(*args, **kwargs),  # noqa: B023
            kwargs,
            hf_errors=Exception,
        )
        if results is None:
            continue
        got, expected = results
        assert list(got) == list(expected), kwargs
        assert _all_lists(got) == _all_lists(expected), (args, kwargs)
        one_text = all(isinstance(word, str) for word in args[0])
        rows = 1 if one_text and kwargs["return_tensors"] is None else len(got["input_ids"])
        for row in range(rows):
            assert got.word_ids(row) == expected.word_ids(row), (args, kwargs, row)
            assert got.sequence_ids(row) == expected.sequence_ids(row), (args, kwargs, row)
        compared += 1
    print("CMP", compared)
    assert compared > 25, compared


def _aligned_labels(tokenizer, examples: list[list[str]], tags: list[list[int]]) -> list[dict]:
    """The token-classification recipe: tokenize pre-split words, give each word's first
    token its tag and every other token -100, found through word_ids."""
    encoded = tokenizer(examples, is_split_into_words=True, truncation=True, max_length=6)
    features = []
    for i, row_tags in enumerate(tags):
        labels, previous = [], None
        for word in encoded.word_ids(i):
            labels.append(-100 if word is None or word == previous else row_tags[word])
            previous = word
        features.append({"input_ids": encoded["input_ids"][i], "labels": labels})
    return features


def test_token_classification_recipe_matches_hf(make_tokenizer, tmp_path) -> None:
    ours, hf = _with_hf(make_tokenizer, tmp_path, "char", add_bos=True, add_eos=True)
    examples = [["ab", "c", "de"], ["f"], ["gh", "ij", "k", "l"]]
    tags = [[1, 2, 3], [4], [5, 6, 7, 8]]
    got, expected = (
        transformers.DataCollatorForTokenClassification(tokenizer)(
            _aligned_labels(tokenizer, examples, tags)
        )
        for tokenizer in (ours, hf)
    )
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key
    assert got["labels"][0].tolist() == [-100, 1, -100, 2, 3, -100]


def test_pair_helpers_match_hf(make_tokenizer, tmp_path) -> None:
    for bos, eos in [(True, True), (True, False), (False, False)]:
        ours = make_tokenizer("simple", add_bos=bos, add_eos=eos, model_max_length=64)
        ours.save_pretrained(tmp_path / f"{bos}{eos}")
        hf = transformers.AutoTokenizer.from_pretrained(tmp_path / f"{bos}{eos}")
        assert ours.num_special_tokens_to_add(pair=True) == hf.num_special_tokens_to_add(True)
        assert ours.max_len_sentences_pair == hf.max_len_sentences_pair
        assert ours.encode("1 2", "3") == hf.encode("1 2", "3")
        finished = ours("1 2", "3 4")["input_ids"]
        assert ours.get_special_tokens_mask(
            finished, already_has_special_tokens=True
        ) == hf.get_special_tokens_mask(finished, already_has_special_tokens=True)
        targets = dict(text_target=["5", "6 7"], text_pair_target=["8 9", "1"], padding=True)
        assert _all_lists(ours(["1", "2"], ["3", "4"], **targets)) == _all_lists(
            hf(["1", "2"], ["3", "4"], **targets)
        )


PAD_GRID = list(
    itertools.product(
        [True, "longest", "max_length", False],  # padding
        [None, 8],  # max_length
        [None, 3],  # pad_to_multiple_of
        [None, "np", "pt"],  # return_tensors
    )
)


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_matches_pretrained_tokenizer_fast(make_tokenizer, tmp_path, side: str) -> None:
    ours, hf = _with_hf(make_tokenizer, tmp_path, "simple", padding_side=side)
    feature_sets = [
        [{"input_ids": [8, 9, 10]}, {"input_ids": [11]}, {"input_ids": [12, 13]}],
        [
            {"input_ids": [8, 9], "attention_mask": [1, 1]},
            {"input_ids": [7], "attention_mask": [1]},
        ],
        [{"input_ids": [8, 9, 10]}, {"input_ids": [7, 8, 9]}],
    ]
    compared = 0
    for features, (padding, max_length, multiple, tensors) in itertools.product(
        feature_sets, PAD_GRID
    ):
        kwargs = dict(
            padding=padding,
            max_length=max_length,
            pad_to_multiple_of=multiple,
            return_tensors=tensors,
        )
        got, error = _outcome(lambda: ours.pad([dict(f) for f in features], **kwargs))  # noqa: B023
        if error is not None:
            assert _ours_is_stricter(error, padding, True, max_length), (kwargs, error)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = hf.pad([dict(f) for f in features], **kwargs)
        assert _lists(got) == _lists(expected), (features, kwargs)
        compared += 1
    assert compared > 100


def test_pad_with_numpy_rows_and_extra_keys_matches(simple_tokenizer, tmp_path) -> None:
    simple_tokenizer.save_pretrained(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    features = [
        {"input_ids": np.array([8, 9]), "labels": 1},
        {"input_ids": np.array([10]), "labels": 0},
    ]
    got = simple_tokenizer.pad(features, return_tensors="pt")
    expected = hf.pad(features, return_tensors="pt")
    for key in ("input_ids", "attention_mask", "labels"):
        assert got[key].tolist() == expected[key].tolist()


def test_hf_enums_and_none_options_work_as_in_hf(simple_tokenizer, tmp_path) -> None:
    # HF code passes PaddingStrategy / TruncationStrategy / TensorType members (str enums)
    # where users pass strings; both tokenizers must read them alike.
    from transformers.tokenization_utils_base import TruncationStrategy
    from transformers.utils import PaddingStrategy, TensorType

    simple_tokenizer.save_pretrained(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    texts = ["1 2 3", "4"]
    as_enums = dict(
        padding=PaddingStrategy.MAX_LENGTH,
        truncation=TruncationStrategy.LONGEST_FIRST,
        max_length=2,
        return_tensors=TensorType.NUMPY,
    )
    as_strings = dict(padding="max_length", truncation="longest_first", max_length=2)
    got = simple_tokenizer(texts, **as_enums)
    assert _lists(got) == _lists(simple_tokenizer(texts, **as_strings, return_tensors="np"))
    assert _lists(got) == _lists(hf(texts, **as_enums))
    # None is HF's "the tokenizer's default": the attention mask is returned.
    unset = dict(padding=True, return_attention_mask=None, return_token_type_ids=None)
    assert _lists(simple_tokenizer(texts, **unset)) == _lists(hf(texts, **unset))
    features = [{"input_ids": [8, 9, 10]}, {"input_ids": [11]}]
    padded = simple_tokenizer.pad(features, padding=PaddingStrategy.LONGEST, return_tensors="pt")
    assert _lists(padded) == _lists(hf.pad(features, padding="longest", return_tensors="pt"))


def test_model_max_length_survives_the_export_and_means_what_it_means_in_hf(tmp_path) -> None:
    from ferrofix.tokenizers import SimpleTokenizer

    unlimited = SimpleTokenizer.for_numbers(50)
    unlimited.save_pretrained(tmp_path / "unlimited")
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path / "unlimited")
    assert unlimited.model_max_length == hf.model_max_length
    limited = SimpleTokenizer.for_numbers(50, model_max_length=4)
    limited.save_pretrained(tmp_path / "limited")
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path / "limited")
    assert hf.model_max_length == 4
    assert hf.max_len_single_sentence == limited.max_len_single_sentence == 4
    texts = ["1 2 3 4 5 6", "7"]
    for options in (dict(truncation=True), dict(padding="max_length", truncation=True)):
        assert _lists(limited(texts, **options)) == _lists(hf(texts, **options)), options
    features = [{"input_ids": [8, 9]}, {"input_ids": [10]}]
    assert _lists(limited.pad(features, padding="max_length")) == _lists(
        hf.pad(features, padding="max_length")
    )


def test_hf_signatures_read_alike_positionally_and_by_keyword(make_tokenizer, tmp_path) -> None:
    # HF code calls tokenizer(text, text_pair, ..., padding, ...) and pad(inputs, padding,
    # max_length, multiple, padding_side, ...) positionally too; ours takes the same order.
    ours, hf = _with_hf(make_tokenizer, tmp_path, "simple", add_bos=True)
    texts = ["1 2 3", "4"]
    positional = (texts, None, None, None, True, "longest", True, 4, 0, False, 2, "left", "np")
    assert _lists(ours(*positional)) == _lists(hf(*positional))
    features = [{"input_ids": [8, 9, 10]}, {"input_ids": [11]}]
    padded = (True, None, 4, "left", None, "pt")
    assert _lists(ours.pad([dict(f) for f in features], *padded)) == _lists(
        hf.pad([dict(f) for f in features], *padded)
    )
    for side in ("left", "right"):
        options = dict(padding="max_length", max_length=5, padding_side=side)
        assert _lists(ours(texts, **options)) == _lists(hf(texts, **options))
        assert ours.encode("1 2", **options) == hf.encode("1 2", **options)
        assert _lists(ours.pad(features, **options)) == _lists(hf.pad(features, **options))
    truncated = dict(truncation=True, max_length=2)
    assert ours.encode("1 2 3", **truncated) == hf.encode("1 2 3", **truncated)
    as_tensor = ours.encode("1 2", return_tensors="pt", padding="max_length", max_length=4)
    assert (
        as_tensor.tolist()
        == hf.encode("1 2", return_tensors="pt", padding="max_length", max_length=4).tolist()
    )


def test_special_tokens_mask_of_finished_sequences_matches(make_tokenizer, tmp_path) -> None:
    ours, hf = _with_hf(make_tokenizer, tmp_path, "simple", add_bos=True, add_eos=True)
    for ids in ([4, 7, 2, 8, 3, 0, 0], [], [56, 6, 5, 1]):
        assert ours.get_special_tokens_mask(
            ids, already_has_special_tokens=True
        ) == hf.get_special_tokens_mask(ids, already_has_special_tokens=True)


def _collators(tokenizer) -> dict:
    return {
        "padding": transformers.DataCollatorWithPadding(tokenizer, pad_to_multiple_of=4),
        "mlm": transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.5),
        "causal": transformers.DataCollatorForLanguageModeling(tokenizer, mlm=False),
        "seq2seq": transformers.DataCollatorForSeq2Seq(tokenizer),
        "token classification": transformers.DataCollatorForTokenClassification(tokenizer),
    }


@pytest.mark.parametrize("side", ["right", "left"])
def test_hf_data_collators_give_what_they_give_with_the_exported_tokenizer(
    make_tokenizer, tmp_path, side: str
) -> None:
    # transformers' own collators with our tokenizer and with HF's loading of its export:
    # the same batches (masked-LM draws from torch's generator, seeded alike before each).
    ours, hf = _with_hf(
        make_tokenizer, tmp_path, "simple", add_bos=True, add_eos=True, padding_side=side
    )
    texts = ["1 2 3 4 5 6", "7 [MASK] 8", "9"]
    with_mask = [dict(ours(t, return_special_tokens_mask=True)) for t in texts]
    plain = [{"input_ids": ours.encode(t)} for t in texts]
    labelled = [{"input_ids": f["input_ids"], "labels": f["input_ids"][::-1]} for f in plain]
    for name in _collators(ours):
        for features in (
            (labelled,)
            if name in ("seq2seq", "token classification")
            else (
                plain,
                with_mask,
            )
        ):
            batches = []
            for tokenizer in (ours, hf):
                torch.manual_seed(3)
                batches.append(_collators(tokenizer)[name]([dict(f) for f in features]))
            got, expected = batches
            assert sorted(got) == sorted(expected), name
            for key in expected:
                assert torch.equal(got[key], expected[key]), (name, key)


def test_hf_attributes_and_clean_up_match(exported) -> None:
    ours, directory = exported
    auto = transformers.AutoTokenizer.from_pretrained(directory)
    assert ours.special_tokens_map == auto.special_tokens_map
    assert ours.model_input_names == auto.model_input_names
    assert ours.num_special_tokens_to_add() == auto.num_special_tokens_to_add()
    assert ours.clean_up_tokenization_spaces == auto.clean_up_tokenization_spaces
    assert ours.vocab == auto.vocab
    assert ours.get_added_vocab() == auto.get_added_vocab()
    assert ours.pad_token_type_id == auto.pad_token_type_id
    assert ours.max_len_single_sentence == auto.max_len_single_sentence
    only_hf_cleans_up = HF_CLEANS_UP_BPE and ours.kind in ("byte", "bpe")
    for text in random_texts(ours.kind, 100, seed=2):
        ids = ours.encode(text)
        tokens = ours.convert_ids_to_tokens(ids)
        assert ours.convert_tokens_to_string(tokens) == auto.convert_tokens_to_string(tokens)
        for clean in (True, False):
            hf_clean = clean and not only_hf_cleans_up
            assert ours.decode(ids, clean_up_tokenization_spaces=clean) == auto.decode(
                ids, clean_up_tokenization_spaces=hf_clean
            )
        assert ours.batch_decode([ids], True, True) == auto.batch_decode(
            [ids], True, not only_hf_cleans_up
        )


def test_clean_up_default_survives_the_export(make_tokenizer, tmp_path) -> None:
    words = ["it", "'s", "do", "n't", "."]
    ours = make_tokenizer("simple", vocab=words, clean_up_tokenization_spaces=True)
    ours.save_pretrained(tmp_path)
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ids = ours.encode("it 's . do n't")
    assert ours.decode(ids) == auto.decode(ids) == "it's. don't"
