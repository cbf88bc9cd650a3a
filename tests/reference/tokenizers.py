"""Slow, obviously-correct references for the tokenizers: byte-level BPE training that
recounts every pair after each merge, and merge-rank encoding by repeated scans. The GPT-2
split comes from HF ``tokenizers`` (an independent implementation of the same regex)."""

from __future__ import annotations

import itertools
from collections import Counter

SPECIAL_COUNT = 7


def byte_chars() -> list[str]:
    """GPT-2's printable character for each byte."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def pieces(text: str) -> list[str]:
    from tokenizers import pre_tokenizers

    split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    chars = {c: b for b, c in enumerate(byte_chars())}
    return [bytes(chars[c] for c in piece).decode() for piece, _ in split.pre_tokenize_str(text)]


def train(texts: list[str], num_merges: int, min_frequency: int) -> list[tuple[bytes, bytes]]:
    """Most frequent adjacent pair first; ties to the smaller (left, right) symbol ids, where
    bytes are ids 0..255 and each new token takes the next id (an existing token's id when
    its bytes already exist)."""
    words = Counter(p.encode() for t in texts for p in pieces(t))
    symbols = [bytes([b]) for b in range(256)]
    index = {s: i for i, s in enumerate(symbols)}
    seqs = {w: [w[i] for i in range(len(w))] for w in words}
    merges = []
    while len(merges) < num_merges:
        counts: Counter[tuple[int, int]] = Counter()
        for word, freq in words.items():
            seq = seqs[word]
            for pair in itertools.pairwise(seq):
                counts[pair] += freq
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        if counts[best] < min_frequency:
            break
        left, right = best
        joined = symbols[left] + symbols[right]
        if joined not in index:
            index[joined] = len(symbols)
            symbols.append(joined)
        merged = index[joined]
        merges.append((symbols[left], symbols[right]))
        for word, seq in seqs.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and seq[i] == left and seq[i + 1] == right:
                    out.append(merged)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            seqs[word] = out
    return merges


def encode(text: str, merges: list[tuple[bytes, bytes]]) -> list[bytes]:
    """The tokens (as bytes) of ``text``: per piece, merge the lowest-rank adjacent pair,
    leftmost first, until none has a rank."""
    rank = {}
    for r, (left, right) in enumerate(merges):
        rank.setdefault((left, right), r)
    out = []
    for piece in pieces(text):
        parts = [bytes([b]) for b in piece.encode()]
        while len(parts) > 1:
            ranked = [
                (rank[(parts[i], parts[i + 1])], i)
                for i in range(len(parts) - 1)
                if (parts[i], parts[i + 1]) in rank
            ]
            if not ranked:
                break
            _, i = min(ranked)
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        out.extend(parts)
    return out


def word_encode(text: str, vocab: list[str], specials: list[str]) -> list[int]:
    """Word-model ids: special tokens found anywhere (leftmost, longest first), the text
    between them split on whitespace and looked up (specials are ids 0..k, then ``vocab``)."""
    ids = {token: i for i, token in enumerate([*specials, *vocab])}
    by_length = sorted(specials, key=len, reverse=True)
    out, start, i = [], 0, 0
    while i < len(text):
        match = next((s for s in by_length if text.startswith(s, i)), None)
        if match is None:
            i += 1
            continue
        out.extend(ids[w] for w in text[start:i].split())
        out.append(ids[match])
        i += len(match)
        start = i
    out.extend(ids[w] for w in text[start:].split())
    return out
