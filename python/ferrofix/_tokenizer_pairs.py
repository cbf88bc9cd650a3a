"""Text pairs for ``Tokenizer.__call__`` and ``encode``: ``tokenizer(text, text_pair)`` as
HF lays out, truncates and types a pair.

Each side is encoded natively without special tokens; each row is then built as HF's
template builds it (``[BOS] A [EOS] [BOS] B [EOS]``, with whichever of BOS/EOS the
tokenizer adds), token type 0 on the first text's part and 1 on the second's, cut by the
rules of HF ``tokenizers`` (below), and padded by ``pad``'s code. Pairs are what encoder
suites (sentence-pair classification, cross-encoders) pass; rows are small, so this is
plain Python over lists.
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


def encode_pairs(
    tokenizer: Tokenizer,
    args: tuple[str, str],
    firsts: Sequence[str],
    seconds: Sequence[str],
    options: _CallOptions,
    *,
    single: bool,
) -> Encoding:
    """``__call__``'s encoding of the pairs ``zip(firsts, seconds)``; ``args`` names the
    two arguments they came in (``text``/``text_pair`` or the targets), for errors."""
    bos, eos = tokenizer._role_ids["bos"], tokenizer._role_ids["eos"]
    before = [bos] if options.add_special_tokens and tokenizer.add_bos else []
    after = [eos] if options.add_special_tokens and tokenizer.add_eos else []
    num_special = 2 * (len(before) + len(after))

    def marked(content: list[int]) -> list[int]:
        """The special mask of one part: 1 on its BOS/EOS, 0 on ``content``."""
        return [1] * len(before) + [0] * len(content) + [1] * len(after)

    max_length = options.max_length
    if max_length is not None and max_length < max(num_special, 1):
        raise ConfigError(
            f"max_length: must be at least {max(num_special, 1)} (room for the {num_special} "
            f"special tokens a pair gets), got {max_length}"
        )
    firsts_ids = _content_rows(tokenizer, firsts, args[0])
    seconds_ids = _content_rows(tokenizer, seconds, args[1])
    left_cut = tokenizer.truncation_side == "left"
    features: dict[str, list[list[int]]] = {
        "input_ids": [],
        "token_type_ids": [],
        "attention_mask": [],
        "special_tokens_mask": [],
    }
    for i, (first, second) in enumerate(zip(firsts_ids, seconds_ids, strict=True)):
        total = len(first) + len(second) + num_special
        if max_length is not None and total > max_length:
            if options.truncation is None:  # not asked to truncate
                raise ConfigError(
                    f"truncation: the pair {args[0]}[{i}], {args[1]}[{i}] has {total} tokens, "
                    f"more than max_length={max_length}; pass truncation=True or a larger "
                    "max_length"
                )
            kept = kept_lengths(
                len(first), len(second), max_length - num_special, options.truncation
            )
            if kept is None:
                cut = args[0] if options.truncation == "only_first" else args[1]
                raise ConfigError(
                    f"truncation: '{options.truncation}' cannot fit the pair {args[0]}[{i}], "
                    f"{args[1]}[{i}] into max_length={max_length}: {cut}[{i}] would keep no "
                    "token; pass truncation=True (longest_first) or a larger max_length"
                )
            first, second = _cut(first, kept[0], left_cut), _cut(second, kept[1], left_cut)
        first_part, second_part = [*before, *first, *after], [*before, *second, *after]
        ids = first_part + second_part
        features["input_ids"].append(ids)
        features["token_type_ids"].append([0] * len(first_part) + [1] * len(second_part))
        features["attention_mask"].append([1] * len(ids))
        features["special_tokens_mask"].append(marked(first) + marked(second))
    return _padded(tokenizer, features, options, single=single)


def _content_rows(tokenizer: Tokenizer, texts: Sequence[str], arg: str) -> list[list[int]]:
    """Each text's ids without special tokens, untruncated."""
    ids, _, lengths = tokenizer._encode_batch(
        texts,
        max_length=None,
        truncation=False,
        width="longest",
        pad_to_multiple_of=None,
        add_special_tokens=False,
        padding_side="right",
        texts_arg=arg,
    )
    return [row[:n] for row, n in zip(ids.tolist(), lengths.tolist(), strict=True)]


def _cut(ids: list[int], keep: int, from_left: bool) -> list[int]:
    """``ids`` cut to ``keep`` tokens, from the start when ``from_left``."""
    return ids[len(ids) - keep :] if from_left else ids[:keep]


def _padded(
    tokenizer: Tokenizer, features: dict[str, Any], options: _CallOptions, *, single: bool
) -> Encoding:
    """The rows padded and returned as ``__call__`` returns a single text's."""
    import numpy as np

    from ferrofix._tokenizer_pad import pad_features
    from ferrofix.tokenizers import Encoding, _as_tensors

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
    lengths = [len(row) for row in encoding["input_ids"]]
    if options.return_tensors is not None:
        if options.return_length:
            encoding["length"] = np.array(lengths, dtype=np.int64)
        return _as_tensors(dict(encoding), options.return_tensors)
    if single:
        encoding = Encoding({key: rows[0] for key, rows in encoding.items()})
    if options.return_length:
        encoding["length"] = lengths  # a list for a single pair too, as in HF
    return encoding
