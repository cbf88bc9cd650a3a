"""``Tokenizer.__call__``'s rows built in Python from each text's ids: text pairs
(``text_pair``) and overflowing windows (``return_overflowing_tokens``), as HF lays out,
cuts and types them.

Each text is encoded natively without special tokens; each row is then built as HF's
template builds it (``[BOS] A [EOS]``, or ``[BOS] A [EOS] [BOS] B [EOS]`` for a pair, with
whichever of BOS/EOS the tokenizer adds; token type 0 on the first text's part and 1 on the
second's), cut by the rules of HF ``tokenizers`` (below), and padded by ``pad``'s code.
Pairs are what encoder suites pass (sentence-pair classification, cross-encoders, QA);
windows are how long documents become rows of a fixed length; pre-split words
(``is_split_into_words``) are what token-classification suites pass, each word encoded on
its own, and their encodings say which word each token came from (``word_ids``). Rows are
small, so this is plain Python over lists; a plain batch of single texts never comes here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ferrofix.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ferrofix.tokenizers import Encoding, Tokenizer, _CallOptions


def kept_lengths(first: int, second: int, budget: int, strategy: str) -> tuple[int, int] | None:
    """How many of their ``first`` and ``second`` tokens the two texts of a pair keep when
    ``budget`` tokens fit (the special tokens already taken out); None when ``only_first``
    or ``only_second`` cannot make room.

    ``longest_first``, as HF ``tokenizers`` computes it: the shorter text keeps all of its
    tokens when the longer one can make room alone; otherwise both keep half the budget,
    the odd token going to the longer text (to the second on a tie). ``only_first`` and
    ``only_second`` cut that text alone, and HF fails unless it keeps at least one token.
    """
    if first + second <= budget:
        return first, second
    if strategy == "longest_first":
        short, long = sorted((first, second))
        long = short if short > budget else max(short, budget - short)
        if short + long > budget:
            short = budget // 2
            long = short + budget % 2
        return (long, short) if first > second else (short, long)
    excess = first + second - budget
    if strategy == "only_first":
        return (first - excess, second) if first > excess else None
    return (first, second - excess) if second > excess else None


def window_ranges(total: int, size: int, stride: int, from_left: bool) -> list[tuple[int, int]]:
    """The ``(start, stop)`` spans HF ``tokenizers`` cuts ``total`` tokens into for
    overflowing windows of ``size`` tokens, consecutive windows sharing ``stride`` tokens
    (``0 <= stride < size``): from the start, the last window ending at the text's end; or,
    ``from_left`` (truncation from the left), from the end backwards, the last window
    starting at the text's start. One span when the text fits."""
    if total <= size:
        return [(0, total)]
    step = size - stride
    spans = []
    if from_left:
        stop = total
        while True:
            start = max(stop - size, 0)
            spans.append((start, stop))
            if start == 0:
                return spans
            stop -= step
    start = 0
    while True:
        stop = min(start + size, total)
        spans.append((start, stop))
        if stop == total:
            return spans
        start += step


def encode_rows(
    tokenizer: Tokenizer,
    args: tuple[str, str],
    firsts: Sequence[str],
    seconds: Sequence[str] | None,
    options: _CallOptions,
    *,
    single: bool,
) -> Encoding:
    """``__call__``'s encoding of ``firsts`` (paired with ``seconds`` when given); ``args``
    names the two arguments they came in (``text``/``text_pair`` or the targets), for
    errors. With ``options.overflow`` a text that does not fit becomes several rows, and
    ``overflow_to_sample_mapping`` says which text each row came from."""
    bos, eos = tokenizer._role_ids["bos"], tokenizer._role_ids["eos"]
    before = [bos] if options.add_special_tokens and tokenizer.add_bos else []
    after = [eos] if options.add_special_tokens and tokenizer.add_eos else []
    rows = _Rows(before, after, paired=seconds is not None)
    if options.max_length is not None and options.max_length < max(rows.num_special, 1):
        what = "a pair gets" if seconds is not None else "added"
        raise ConfigError(
            f"max_length: must be at least {max(rows.num_special, 1)} (room for the "
            f"{rows.num_special} special tokens {what}), got {options.max_length}"
        )
    first_texts = _contents(tokenizer, firsts, args[0], options.split)
    second_texts = (
        None if seconds is None else _contents(tokenizer, seconds, args[1], options.split)
    )
    cutter = _Cutter(args, options, rows.num_special, tokenizer.truncation_side == "left")
    for i, first in enumerate(first_texts):
        second = None if second_texts is None else second_texts[i]
        for first_kept, second_kept in cutter.cut(i, first, second):
            rows.add(i, first_kept, second_kept)
    return _padded(tokenizer, rows, options, single=single and not options.overflow)


class _Text:
    """One text's ids without special tokens and, for pre-split words, each id's word."""

    __slots__ = ("ids", "words")

    def __init__(self, ids: list[int], words: list[int] | None) -> None:
        self.ids, self.words = ids, words

    def __len__(self) -> int:
        return len(self.ids)

    def span(self, start: int, stop: int) -> _Text:
        words = None if self.words is None else self.words[start:stop]
        return _Text(self.ids[start:stop], words)


class _Rows:
    """The rows of a call as they are laid out, key by key, before padding."""

    def __init__(self, before: list[int], after: list[int], *, paired: bool) -> None:
        self.before, self.after = before, after
        self.num_special = (2 if paired else 1) * (len(before) + len(after))
        self.features: dict[str, list[list[int]]] = {
            "input_ids": [],
            "token_type_ids": [],
            "attention_mask": [],
            "special_tokens_mask": [],
        }
        self.sources: list[int] = []
        # Each row's word of every token, None on special tokens, as HF's word_ids() reads.
        self.word_ids: list[list[int | None]] = []

    def add(self, source: int, first: _Text, second: _Text | None) -> None:
        """A row of ``first`` (and ``second``) wrapped in the special tokens, from text
        ``source``."""
        parts = [first] if second is None else [first, second]
        ids, types, special, words = [], [], [], []
        edges = [None] * len(self.before), [None] * len(self.after)
        for type_id, content in enumerate(parts):
            part = [*self.before, *content.ids, *self.after]
            ids += part
            types += [type_id] * len(part)
            special += [1] * len(self.before) + [0] * len(content) + [1] * len(self.after)
            words += [*edges[0], *(content.words or [None] * len(content)), *edges[1]]
        self.features["input_ids"].append(ids)
        self.features["token_type_ids"].append(types)
        self.features["attention_mask"].append([1] * len(ids))
        self.features["special_tokens_mask"].append(special)
        self.sources.append(source)
        self.word_ids.append(words)

    def sequence_ids(self) -> list[list[int | None]]:
        """Each row's text of a pair (0 or 1) for every token, None on special tokens."""
        return [
            [None if special else type_id for type_id, special in zip(types, marks, strict=True)]
            for types, marks in zip(
                self.features["token_type_ids"], self.features["special_tokens_mask"], strict=True
            )
        ]


class _Cutter:
    """What of a text (or a pair) each of its rows keeps, by HF's truncation rules."""

    def __init__(
        self, args: tuple[str, str], options: _CallOptions, num_special: int, left: bool
    ) -> None:
        self.args, self.options, self.num_special, self.left = args, options, num_special, left

    def cut(self, i: int, first: _Text, second: _Text | None) -> list[tuple[_Text, _Text | None]]:
        """The ``(first, second)`` contents of the rows pair (or text) ``i`` becomes."""
        options, args = self.options, self.args
        total = len(first) + len(second or ()) + self.num_special
        if options.max_length is None or total <= options.max_length:
            return [(first, second)]
        name = (
            f"the pair {args[0]}[{i}], {args[1]}[{i}]" if second is not None else f"{args[0]}[{i}]"
        )
        if options.truncation is None:  # not asked to truncate
            raise ConfigError(
                f"truncation: {name} has {total} tokens, more than max_length="
                f"{options.max_length}; pass truncation=True or a larger max_length"
            )
        budget = options.max_length - self.num_special
        if second is None:
            return [(window, None) for window in self._windows(first, budget, args[0], i)]
        if not options.overflow:
            kept = kept_lengths(len(first), len(second), budget, options.truncation)
            if kept is None:
                self._cannot_fit(name, i)
            return [(_cut(first, kept[0], self.left), _cut(second, kept[1], self.left))]
        if options.truncation == "longest_first":
            raise ConfigError(
                "truncation: overflowing windows of a pair cut one of its texts; pass "
                "'only_first' or 'only_second' (HF's longest_first windows pair every window "
                "of one text with every window of the other)"
            )
        if options.truncation == "only_first":
            size = budget - len(second)
            return [(window, second) for window in self._windows(first, size, args[0], i, name)]
        size = budget - len(first)
        return [(first, window) for window in self._windows(second, size, args[1], i, name)]

    def _windows(
        self, text: _Text, size: int, arg: str, i: int, pair: str | None = None
    ) -> list[_Text]:
        """``ids`` cut to ``size`` tokens, or into overflowing windows of that size."""
        if size < 1:
            self._cannot_fit(pair or f"{arg}[{i}]", i)
        if not self.options.overflow:
            return [_cut(text, size, self.left)]
        stride = self.options.stride
        if stride >= size:
            raise ConfigError(
                f"stride: must be less than the {size} tokens each window of {arg}[{i}] "
                f"holds (max_length={self.options.max_length} less the special tokens"
                f"{' and the other text' if pair else ''}), got {stride}"
            )
        spans = window_ranges(len(text), size, stride, self.left)
        return [text.span(start, stop) for start, stop in spans]

    def _cannot_fit(self, name: str, i: int) -> None:
        options, args = self.options, self.args
        cut = args[0] if options.truncation != "only_second" else args[1]
        raise ConfigError(
            f"truncation: '{options.truncation}' cannot fit {name} into max_length="
            f"{options.max_length}: {cut}[{i}] would keep no token; pass truncation=True "
            "(longest_first) or a larger max_length"
        )


def _contents(tokenizer: Tokenizer, texts: Sequence[Any], arg: str, split: bool) -> list[_Text]:
    """Each text's ids without special tokens, untruncated; with ``split`` each text is a
    list of words, each encoded on its own (as HF does), and each id knows its word."""
    if not split:
        return [_Text(ids, None) for ids in _ids_of(tokenizer, texts, arg)]
    words = [word for text in texts for word in text]
    ids_of_words = iter(_ids_of(tokenizer, words, arg))
    contents = []
    for text in texts:
        ids: list[int] = []
        word_of: list[int] = []
        for k in range(len(text)):
            word_ids = next(ids_of_words)
            ids += word_ids
            word_of += [k] * len(word_ids)
        contents.append(_Text(ids, word_of))
    return contents


def _ids_of(tokenizer: Tokenizer, texts: Sequence[str], arg: str) -> list[list[int]]:
    ids, _, lengths = tokenizer._encode_batch(
        list(texts),
        max_length=None,
        truncation=False,
        width="longest",
        pad_to_multiple_of=None,
        add_special_tokens=False,
        padding_side="right",
        texts_arg=arg,
    )
    return [row[:n] for row, n in zip(ids.tolist(), lengths.tolist(), strict=True)]


def _cut(text: _Text, keep: int, from_left: bool) -> _Text:
    """``text`` cut to ``keep`` tokens, from the start when ``from_left``."""
    return text.span(len(text) - keep, len(text)) if from_left else text.span(0, keep)


def _padded(tokenizer: Tokenizer, rows: _Rows, options: _CallOptions, *, single: bool) -> Encoding:
    """The rows padded and returned as ``__call__`` returns a single text's."""
    import numpy as np

    from ferrofix._tokenizer_pad import pad_features
    from ferrofix.tokenizers import Encoding, _as_tensors

    features = dict(rows.features)
    for key, wanted in (
        ("token_type_ids", options.return_token_type_ids),
        ("attention_mask", options.return_attention_mask),
        ("special_tokens_mask", options.return_special_tokens_mask),
    ):
        if not wanted:
            del features[key]
    padding = ("max_length" if options.width == "max_length" else True) if options.pad else False
    encoding = pad_features(
        tokenizer,
        features,
        padding=padding,
        max_length=options.max_length,
        pad_to_multiple_of=options.multiple,
        padding_side=options.side,
        return_tensors=None if options.return_tensors is None else "np",
        return_attention_mask=options.return_attention_mask,
    )
    extra = {}
    if options.return_length:
        extra["length"] = [len(row) for row in encoding["input_ids"]]
    if options.overflow:
        extra["overflow_to_sample_mapping"] = rows.sources
    if options.return_tensors is not None:
        arrays = dict(encoding)
        arrays |= {key: np.array(value, dtype=np.int64) for key, value in extra.items()}
        out = _as_tensors(arrays, options.return_tensors)
    else:
        out = Encoding({key: values[0] for key, values in encoding.items()}) if single else encoding
        out |= extra  # lists, for a single text too, as in HF
    if options.split:
        width = len(encoding["input_ids"][0]) if len(encoding["input_ids"]) else 0
        left = options.pad and options.side == "left"
        out._set_token_maps(
            _padded_maps(rows.word_ids, width if options.pad else None, left),
            _padded_maps(rows.sequence_ids(), width if options.pad else None, left),
        )
    return out


def _padded_maps(rows: list[list[int | None]], width: int | None, left: bool) -> list[list[Any]]:
    """Per-token maps (word or sequence ids) padded with None as the ids were."""
    if width is None:
        return rows
    return [
        [None] * (width - len(row)) + row if left else row + [None] * (width - len(row))
        for row in rows
    ]
