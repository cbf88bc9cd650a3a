"""Tiny native tokenizers with the Hugging Face surface collators and models call.

Four models share one vocabulary layout: the special tokens first (``[PAD]``=0, ``[CLS]``=1,
``[MASK]``=2, ``[EOS]``=3, ``[BOS]``=4, ``[SEP]``=5, ``[UNK]``=6 by default), then the
model's own tokens:

- ``SimpleTokenizer(vocab)``: words split on whitespace (runs give no empty words), looked up
  in ``vocab``; ids from 7 in vocab order;
- ``CharTokenizer(alphabet)``: one id per character;
- ``ByteTokenizer()``: one id per UTF-8 byte (ids 7..262); decoding invalid UTF-8 yields
  U+FFFD, as HF's byte-level decoder does;
- ``BPETokenizer.train(corpus, vocab_size)``: byte-level BPE (GPT-2 pre-tokenization) trained
  natively and deterministically; ``BPETokenizer.from_merges(merges)`` rebuilds one.

Special tokens are recognised anywhere in a text. ``add_special_tokens=True`` adds BOS/EOS
only when the tokenizer was built with ``add_bos``/``add_eos`` (off by default, like a bare
HF ``PreTrainedTokenizer``). ``save_pretrained`` writes an HF ``tokenizer.json`` that
``tokenizers.Tokenizer.from_file`` and ``transformers.PreTrainedTokenizerFast`` load with
identical ids. Encoding runs in Rust with the GIL released; ``batch_encode`` writes one padded
int64 array directly.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.resources
import inspect
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ferrofix import _native, _torch
from ferrofix._args import choice, flag, integer, optional_flag, optional_integer
from ferrofix._arrays import as_array, c_contiguous
from ferrofix._memory import check_outputs_fit
from ferrofix.errors import ConfigError, DtypeError, ShapeError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

__all__ = [
    "DEFAULT_SPECIAL_TOKENS",
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "Encoding",
    "SimpleTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "release_batch_buffers",
]

DEFAULT_SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[MASK]", "[EOS]", "[BOS]", "[SEP]", "[UNK]")
ROLES = ("pad", "cls", "mask", "eos", "bos", "sep", "unk")
PADDING_VALUES = (False, True, "longest", "max_length", "do_not_pad")
TRUNCATION_VALUES = (
    None, False, True, "longest_first", "only_first", "only_second", "do_not_truncate"
)  # fmt: skip
RETURN_TENSORS_VALUES = (None, "np", "pt")
# The truncation a pair gets from each value that truncates (the others name their own).
_TRUNCATION_STRATEGY = {True: "longest_first"}
# The arguments a call's texts and their pairs come in, and its targets and theirs.
TEXT_ARGS = ("text", "text_pair")
TARGET_ARGS = ("text_target", "text_pair_target")
SIDES = ("right", "left")
# HF's model_max_length for a tokenizer without one (transformers' VERY_LARGE_INTEGER), so
# that code such as min(tokenizer.model_max_length, 1024) works; HF reads any value above
# 1e20 (its LARGE_INTEGER) as "no limit", and so do we.
NO_MODEL_MAX_LENGTH = int(1e30)
_NO_LIMIT_ABOVE = int(1e20)
# Memory a vocabulary word costs at the least: its str object and list slot here, and the
# native tokenizer's copy and table slots.
_BYTES_PER_WORD = 100


# The options every tokenizer takes besides its model's own (HF tokenizer attributes).
_COMMON_OPTIONS = (
    "padding_side",
    "truncation_side",
    "model_max_length",
    "clean_up_tokenization_spaces",
)
# HF's clean-up of decoded text: the space a word-level decode leaves before punctuation and
# English contractions.
_CLEAN_UPS = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def _clean_up(text: str) -> str:
    for old, new in _CLEAN_UPS:
        text = text.replace(old, new)
    return text


def _positive(arg: str, value: object) -> int | None:
    return optional_integer(arg, value, low=1, high=2**63 - 1)


class Encoding(dict):
    """The dict ``__call__`` and ``pad`` return (like HF's ``BatchEncoding``).

    Keys read as attributes too (``enc.input_ids``); ``to(device)`` moves torch tensors;
    ``data`` is the dict itself, as HF code reads it.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data(self) -> dict[str, Any]:
        return self

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """Which word of row ``batch_index`` each token came from (None on special tokens
        and padding), as HF's; for encodings of pre-split words (``is_split_into_words``)."""
        return self._token_map("word_ids", batch_index)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """Which text of a pair (0 or 1) each token of row ``batch_index`` came from (None on
        special tokens and padding), as HF's; for encodings of pre-split words."""
        return self._token_map("sequence_ids", batch_index)

    def _set_token_maps(self, word_ids: list[list[Any]], sequence_ids: list[list[Any]]) -> None:
        self.__dict__["_token_maps"] = {"word_ids": word_ids, "sequence_ids": sequence_ids}

    def _token_map(self, name: str, batch_index: int) -> list[int | None]:
        maps = self.__dict__.get("_token_maps")
        if maps is None:
            raise ConfigError(
                f"{name}: ferrofix encodings map tokens back to words only for pre-split words; "
                "call the tokenizer with is_split_into_words=True"
            )
        rows = maps[name]
        if not rows:
            raise ConfigError(f"{name}: the encoding has no rows")
        return list(rows[integer("batch_index", batch_index, low=0, high=len(rows) - 1)])

    def to(self, device: Any, *, non_blocking: bool = False) -> Encoding:
        """Move every torch tensor to ``device``, in place; returns self (HF's signature).

        ``device``: a str (``"cuda:0"``), an int (a CUDA index) or a ``torch.device``; numpy
        values stay where they are. A CUDA device this machine does not have is a
        :class:`CudaUnavailableError` or :class:`ConfigError`, not torch's driver error.
        """
        non_blocking = flag("non_blocking", non_blocking)
        torch = _torch.loaded_torch()  # only then can a value be a torch.device
        is_device = torch is not None and isinstance(device, torch.device)
        if isinstance(device, bool) or not (is_device or isinstance(device, str | int)):
            raise DtypeError(
                f"device: expected a str, an int or a torch.device, got {type(device).__name__}"
            )
        tensors = [key for key, value in self.items() if _torch.is_tensor(value)]
        if tensors:
            target = _available_device(device)
            for key in tensors:
                self[key] = self[key].to(target, non_blocking=non_blocking)
        return self


def _available_device(device: str | int | Any) -> Any:
    """``device`` as a ``torch.device``, checked to exist when it is a CUDA one."""
    import torch

    from ferrofix.devices import cuda_device_count
    from ferrofix.errors import CudaUnavailableError

    try:
        target = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ConfigError(f"device: {error}") from None
    if target.type == "cuda":
        count = cuda_device_count(import_torch=True) or 0
        if count == 0:
            raise CudaUnavailableError(f"device: {target} asked for, but torch sees no CUDA device")
        if target.index is not None and target.index >= count:
            raise ConfigError(
                f"device: {target} asked for, this machine has CUDA devices 0 to {count - 1}"
            )
    return target


def _as_tensors(arrays: dict[str, np.ndarray], return_tensors: str | None) -> Encoding:
    if return_tensors == "pt":
        import torch

        return Encoding({k: torch.from_numpy(v) for k, v in arrays.items()})
    return Encoding(arrays)


def _check_id_dtype(array: np.ndarray, arg: str) -> None:
    """Raise unless ``array`` (not empty) holds integers that fit int64."""
    import numpy as np

    if array.dtype.kind not in "iu":
        what = "ids past int64" if array.dtype.kind == "O" else f"dtype {array.dtype}"
        raise DtypeError(f"{arg}: expected integer token ids, got {what}")
    if array.dtype == np.uint64 and array.max() >= 2**63:
        raise ConfigError(f"{arg}: id {array.max()} is past int64, so no token has it")


def _ids_array(ids: Any, arg: str = "ids") -> np.ndarray:
    """Token ids from an int, a list, a numpy array or a torch tensor, as 1-D int64."""
    import numpy as np

    if _torch.is_tensor(ids):
        ids = _torch.host_array(ids, arg)
    if isinstance(ids, int | np.integer) and not isinstance(ids, bool):
        ids = [int(ids)]
    try:
        array = as_array(arg, ids)
    except ValueError:  # a ragged nested list
        raise ShapeError(f"{arg}: expected a flat sequence of ids, got nested lists") from None
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    _check_id_dtype(array, arg)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ShapeError(f"{arg}: expected shape (L,), got {array.shape}")
    return c_contiguous(array.astype(np.int64, copy=False))


def release_batch_buffers() -> int:
    """Free the idle buffers batch encoding keeps for reuse; returns the bytes freed.

    ``batch_encode`` and ``__call__`` hand out large ``input_ids`` and
    ``attention_mask`` arrays in memory that returns to a small pool (at most four buffers)
    once no array or tensor views it, so the next batch reuses it instead of faulting in
    fresh pages. The token ids encoding writes before it lays out the batch are kept the
    same way (at most 80 MiB), and so is the list of views of the texts (16 bytes a text).
    Call this to give that memory back early.
    """
    return _native.core().release_batch_buffers()


class Tokenizer:
    """The shared HF-compatible surface; build one through a model class below."""

    _native: Any
    kind: str

    def __init__(self) -> None:
        raise TypeError("use SimpleTokenizer, CharTokenizer, ByteTokenizer or BPETokenizer")

    def _setup(
        self,
        native: Any,
        *,
        padding_side: str = "right",
        truncation_side: str = "right",
        model_max_length: int | None = NO_MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces: bool = False,
        **unknown: Any,
    ) -> None:
        if unknown:
            own = [
                p.name
                for p in inspect.signature(type(self).__init__).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY
            ]
            allowed = ", ".join([*own, *_COMMON_OPTIONS])
            raise ConfigError(
                f"{sorted(unknown)[0]}: not an option of {type(self).__name__}; "
                f"the options are {allowed}"
            )
        padding_side = choice("padding_side", padding_side, SIDES)
        truncation_side = choice("truncation_side", truncation_side, SIDES)
        self._native = native
        self.kind = native.kind
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.model_max_length = (
            NO_MODEL_MAX_LENGTH
            if model_max_length is None
            else integer("model_max_length", model_max_length, low=1)
        )
        self._model_limit()  # refuse a limit too long for any array now, not at first use
        (self.clean_up_tokenization_spaces,) = _flags(
            clean_up_tokenization_spaces=clean_up_tokenization_spaces
        )
        self._tokens: list[str] = native.tokens()
        self._special_tokens: list[str] = native.special_tokens()
        self._role_ids: dict[str, int] = dict(native.role_ids())
        self.unk_fallback, self.add_bos, self.add_eos = native.flags()

    def _model_limit(self) -> int | None:
        """``model_max_length`` as the length that padding='max_length' and truncation
        default to, or None when the tokenizer has no limit (HF's rule: above 1e20)."""
        limit = self.model_max_length
        if type(limit) is int and limit > _NO_LIMIT_ABOVE:
            return None
        return optional_integer("model_max_length", limit, low=1, high=2**63 - 1)

    # --- vocabulary ---------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return len(self._tokens)

    @property
    def full_vocab_size(self) -> int:
        """Number of ids, special tokens included (equal to ``vocab_size``: the specials are
        part of the vocabulary, not added on top)."""
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def get_vocab(self) -> dict[str, int]:
        """``{token: id}`` for every id."""
        return {token: i for i, token in enumerate(self._tokens)}

    @property
    def all_special_tokens(self) -> list[str]:
        return list(self._special_tokens)

    @property
    def all_special_ids(self) -> list[int]:
        return list(range(len(self._special_tokens)))

    @property
    def special_tokens(self) -> list[str]:
        """The special tokens, in id order."""
        return list(self._special_tokens)

    @property
    def model_input_names(self) -> list[str]:
        """The keys ``__call__`` returns by default (HF reads this to pick model inputs)."""
        return ["input_ids", "attention_mask"]

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """``{"bos_token": "[BOS]", ...}`` for each role that has a token, as in HF."""
        return {
            f"{role}_token": self._special_tokens[i]
            for role, i in self._role_ids.items()
            if i is not None
        }

    @property
    def vocab(self) -> dict[str, int]:
        """``get_vocab()``, as HF's attribute."""
        return self.get_vocab()

    def get_added_vocab(self) -> dict[str, int]:
        """``{token: id}`` of the special tokens: what HF's loading of the export counts as
        added tokens (there is no other way to add tokens to a ferrofix tokenizer)."""
        return {token: i for i, token in enumerate(self._special_tokens)}

    @property
    def pad_token_type_id(self) -> int:
        """0: every token is in the one segment (``token_type_ids`` are zeros)."""
        return 0

    @property
    def max_len_single_sentence(self) -> int:
        """``model_max_length`` less the BOS/EOS ``encode`` adds, as in HF."""
        return self.model_max_length - self.num_special_tokens_to_add()

    @property
    def max_len_sentences_pair(self) -> int:
        """``model_max_length`` less the BOS/EOS a pair gets, as in HF."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many tokens ``encode`` adds around a text, or a pair (the configured BOS/EOS
        around each of its texts)."""
        return (2 if flag("pair", pair) else 1) * (int(self.add_bos) + int(self.add_eos))

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """The text of a list of tokens, as ``decode`` of their ids gives it."""
        ids = self.convert_tokens_to_ids(_listed("tokens", tokens, "a list of str"))
        return self.decode(ids)

    @property
    def is_fast(self) -> bool:
        """False: not a ``tokenizers``-backed HF tokenizer (no offset mappings or
        ``word_ids``), which is what HF code checks this for."""
        return False

    def get_special_tokens_mask(
        self,
        token_ids_0: Sequence[int],
        token_ids_1: Sequence[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """HF's mask of special tokens (1) and others (0), as masked-LM collators call it.

        ``already_has_special_tokens=True``: ``token_ids_0`` is a finished sequence (a text's
        or a pair's) and every special id in it counts. Otherwise it is content that
        ``encode`` would wrap, with ``token_ids_1`` the second text of a pair: the mask is
        that of the BOS/EOS this tokenizer adds around each (``add_bos``/``add_eos``).
        """
        ids = _ids_array(token_ids_0, "token_ids_0")
        if flag("already_has_special_tokens", already_has_special_tokens):
            if token_ids_1 is not None:
                raise ConfigError(
                    "token_ids_1: a finished sequence (already_has_special_tokens=True) is "
                    "one list of ids, pair or not; pass None"
                )
            return (ids < len(self._special_tokens)).astype(int).tolist()
        parts = [ids] if token_ids_1 is None else [ids, _ids_array(token_ids_1, "token_ids_1")]
        mask = []
        for part in parts:
            mask += [1] * self.add_bos + [0] * len(part) + [1] * self.add_eos
        return mask

    def token_bytes(self) -> list[bytes]:
        """The bytes each id stands for, by id: raw bytes for byte-level tokens (``b" "`` for
        ``"Ġ"``), the UTF-8 text of every other token (e.g. to build tiktoken ranks)."""
        return self._native.token_bytes()

    def _convert_token_to_id(self, token: str) -> int:
        if not isinstance(token, str):
            raise DtypeError(f"token: expected str, got {type(token).__name__}")
        return int(self._native.token_id(token))

    def _convert_id_to_token(self, index: int) -> str:
        return self._native.id_tokens(_ids_array(index))[0]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str] | None) -> int | list[int] | None:
        """The id of a token, or the ids of a list of tokens (None gives None, as in HF)."""
        if tokens is None:
            return None
        if isinstance(tokens, str):
            return self._convert_token_to_id(tokens)
        listed = _listed("tokens", tokens, "a str or a list of str")
        return [self._convert_token_to_id(t) for t in listed]

    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> str | list[str]:
        """The token of an id, or the tokens of a list/array/tensor of ids."""
        single = isinstance(ids, int) or (hasattr(ids, "ndim") and ids.ndim == 0)
        array = _ids_array(ids)
        if flag("skip_special_tokens", skip_special_tokens):
            array = array[array >= len(self._special_tokens)]
        tokens = self._native.id_tokens(array)
        return tokens[0] if single and tokens else tokens

    # --- encoding -----------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """The token strings of ``text`` (no BOS/EOS); byte-level tokens in HF's form."""
        import numpy as np

        ids = np.asarray(self._native.encode(text, False), dtype=np.int64)
        return self._native.id_tokens(ids)

    def encode(
        self,
        text: str,
        text_pair: None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        padding_side: str | None = None,
        return_tensors: str | None = None,
    ) -> Any:
        """The ids of ``text``: a list of ints, or a (1, L) array/tensor as HF returns.

        HF's signature, in its order; padding and truncation options work as in
        ``__call__``, which a call with any of them goes through.
        """
        if (
            text_pair is None
            and padding is False
            and truncation is None
            and max_length is None
            and type(stride) is int
            and stride == 0
            and padding_side is None
        ):
            if return_tensors is None:
                try:
                    return self._native.encode(text, add_special_tokens)
                except TypeError:  # the native call checks the flag, for free; name it
                    flag("add_special_tokens", add_special_tokens)
                    raise
            return_tensors = choice("return_tensors", return_tensors, RETURN_TENSORS_VALUES)
            ids = self.encode_array(text, add_special_tokens)[None, :]
            return _as_tensors({"input_ids": ids}, return_tensors)["input_ids"]
        if not isinstance(text, str):
            raise DtypeError(f"text: expected str, got {type(text).__name__}")
        return self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            padding_side=padding_side,
            return_tensors=return_tensors,
        )["input_ids"]

    def encode_array(self, text: str, add_special_tokens: bool = True) -> np.ndarray:
        """The ids of ``text`` as a 1-D int64 numpy array (the fastest single encode)."""
        try:
            return self._native.encode_array(text, add_special_tokens)
        except TypeError:  # the native call checks the flag, for free; name it
            flag("add_special_tokens", add_special_tokens)
            raise

    def batch_encode(
        self,
        texts: Sequence[str],
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        *,
        truncation: bool = False,
        add_special_tokens: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask, lengths)`` as int64 numpy, in one native pass.

        Rows are padded (on ``padding_side``) to the longest text, or to exactly
        ``max_length`` when given; both rounded up to ``pad_to_multiple_of``. A text longer
        than ``max_length`` is an error unless ``truncation=True``.
        """
        return self._encode_batch(
            texts,
            max_length=_positive("max_length", max_length),
            truncation=flag("truncation", truncation),
            width="longest" if max_length is None else "max_length",
            pad_to_multiple_of=_positive("pad_to_multiple_of", pad_to_multiple_of),
            add_special_tokens=flag("add_special_tokens", add_special_tokens),
            padding_side=self.padding_side,
            texts_arg="texts",
        )

    def _encode_batch(self, texts: Any, **options: Any) -> tuple[Any, Any, Any]:
        if isinstance(texts, tuple):
            texts = list(texts)
        return self._native.encode_batch(
            texts,
            truncation_side=self.truncation_side,
            pad_id=self._pad_id_for_padding(),
            **options,
        )

    def _padding_side(self, padding_side: object) -> str:
        """A call's ``padding_side``, the tokenizer's own when None (as in HF)."""
        return (
            self.padding_side
            if padding_side is None
            else choice("padding_side", padding_side, SIDES)
        )

    def _pad_id_for_padding(self) -> int:
        pad = self._role_ids.get("pad")
        return 0 if pad is None else pad

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        text_pair: str | Sequence[str] | None = None,
        text_target: str | Sequence[str] | None = None,
        text_pair_target: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
    ) -> Encoding:
        """Encode one text or a list of texts the way HF tokenizers do.

        HF's signature, in its order, so HF code's positional and keyword calls both read
        alike. What ferrofix tokenizers do not do is refused with a ConfigError rather than
        ignored: character offsets (``return_offsets_mapping``; ``is_fast`` is False).
        ``verbose`` is accepted and ignored: ferrofix raises where HF would warn.

        ``padding``: False (no padding), True/"longest" (to the longest), "max_length" (to
        ``max_length``), rounded up to ``pad_to_multiple_of``, on ``padding_side`` (default:
        the tokenizer's). ``truncation=True`` cuts rows to ``max_length`` (or
        ``model_max_length``); without it (None or False) a longer text is an error.
        ``return_tensors``: None (lists), "np" or "pt" (2-D, also for a single text).
        ``return_special_tokens_mask``: also a ``special_tokens_mask``, 1 on the BOS/EOS
        added here and on padding, 0 on the text's own tokens (as HF's fast tokenizers mark
        it; masked-LM collators use it to leave those positions unmasked).
        ``return_attention_mask``: None (HF's default) or True keeps ``attention_mask``.
        ``return_token_type_ids=True``: zeros like ``input_ids`` (one segment).
        ``return_length``: ``length``, each row's length as returned (padding included),
        a list or 1-D array even for a single text, as in HF.
        ``text_pair``: the second text of each pair, laid out as HF's template does
        (``[BOS] A [EOS] [BOS] B [EOS]`` with the BOS/EOS this tokenizer adds), token type 0
        on the first part and 1 on the second; ``truncation=True``/``"longest_first"``,
        ``"only_first"`` and ``"only_second"`` cut pairs as HF ``tokenizers`` does. An empty
        ``text_pair`` is an empty second text, as in ``tokenizers`` and HF batches (HF's call
        drops a lone one).
        ``text_target`` (and ``text_pair_target``): what a seq2seq model should produce,
        encoded with the same options; their ``input_ids`` come back as ``labels`` (padded
        with the pad id, as in HF), or, without ``text``, their encoding is the result.
        Unlike HF, a second batch must be the same kind as the one it goes with (one str,
        or a list as long as it) and never goes unused (``text_pair`` needs ``text``).
        ``return_overflowing_tokens=True`` (with truncation): a text longer than
        ``max_length`` becomes several rows, windows that share ``stride`` tokens, as HF
        ``tokenizers`` cuts them (from the end backwards when ``truncation_side`` is
        "left"); of a pair, the text ``"only_first"``/``"only_second"`` names is windowed
        and the other repeated. The rows come back as a batch, with
        ``overflow_to_sample_mapping`` (each row's text). Where HF panics (a stride as long
        as a window), ferrofix raises a ConfigError naming ``stride``.
        ``is_split_into_words=True``: each text is a list of words (a batch, a list of such
        lists), each word encoded on its own and the ids joined, as HF does; the encoding's
        ``word_ids(i)`` and ``sequence_ids(i)`` then say which word and which text of a
        pair each token of row ``i`` came from.
        """
        if not (
            type(stride) is int
            and stride == 0
            and is_split_into_words is False
            and return_overflowing_tokens is False
            and return_offsets_mapping is False
        ):
            overflow, stride, split = _row_options(
                stride=stride,
                is_split_into_words=is_split_into_words,
                return_overflowing_tokens=return_overflowing_tokens,
                return_offsets_mapping=return_offsets_mapping,
            )
        else:
            overflow = split = False
        if verbose is not True:
            flag("verbose", verbose)
        side = self._padding_side(padding_side)
        padding = choice("padding", padding, PADDING_VALUES)
        truncation = choice("truncation", truncation, TRUNCATION_VALUES)
        return_tensors = choice("return_tensors", return_tensors, RETURN_TENSORS_VALUES)
        max_length = _positive("max_length", max_length)
        multiple = _positive("pad_to_multiple_of", pad_to_multiple_of)
        add_special_tokens = flag("add_special_tokens", add_special_tokens)
        return_attention_mask = optional_flag("return_attention_mask", return_attention_mask, True)
        return_special_tokens_mask = flag("return_special_tokens_mask", return_special_tokens_mask)
        return_token_type_ids = optional_flag("return_token_type_ids", return_token_type_ids, False)
        return_length = flag("return_length", return_length)
        pad = padding not in (False, "do_not_pad")
        truncate = truncation not in (None, False, "do_not_truncate")
        if max_length is None and (truncate or padding == "max_length"):
            max_length = self._model_limit()
        if pad and truncate and max_length and multiple and max_length % multiple:
            raise ConfigError(
                f"pad_to_multiple_of: truncation to max_length={max_length} and padding to a "
                f"multiple of {multiple} disagree; make max_length a multiple of {multiple}"
            )
        options = _CallOptions(
            side=side,
            pad=pad,
            truncation=_TRUNCATION_STRATEGY.get(truncation, truncation) if truncate else None,
            width="max_length" if padding == "max_length" else "longest",
            max_length=max_length,
            multiple=multiple,
            return_tensors=return_tensors,
            add_special_tokens=add_special_tokens,
            return_attention_mask=return_attention_mask,
            return_special_tokens_mask=return_special_tokens_mask,
            return_token_type_ids=return_token_type_ids,
            return_length=return_length,
            overflow=overflow,
            stride=stride,
            split=split,
        )
        if (
            text is not None
            and text_pair is None
            and text_target is None
            and text_pair_target is None
        ):
            # The usual call, one text or a batch and nothing paired with it, in fewer steps.
            return self._encode_call(TEXT_ARGS, _batch_of("text", text, split), None, options)
        texts, targets = _texts_and_targets(text, text_target, split)
        pairs = _partner_batch("text_pair", text_pair, "text", texts, split)
        target_pairs = _partner_batch(
            "text_pair_target", text_pair_target, "text_target", targets, split
        )
        if texts is None:
            return self._encode_call(TARGET_ARGS, targets, target_pairs, options)
        encoding = self._encode_call(TEXT_ARGS, texts, pairs, options)
        if targets is not None:
            labels = self._encode_call(TARGET_ARGS, targets, target_pairs, options)
            encoding["labels"] = labels["input_ids"]
        return encoding

    def _encode_call(
        self,
        args: tuple[str, str],
        batch: _Batch,
        pairs: _Batch | None,
        options: _CallOptions,
    ) -> Encoding:
        """``__call__``'s encoding of ``batch`` (paired with ``pairs`` when given), from the
        arguments named ``args``."""
        import numpy as np

        texts, single = batch
        if pairs is not None or options.overflow or options.split:
            from ferrofix._tokenizer_rows import encode_rows

            seconds = None if pairs is None else pairs[0]
            return encode_rows(self, args, texts, seconds, options, single=single)
        if options.truncation == "only_second":
            raise ConfigError(
                f"truncation: 'only_second' cuts the second text of a pair; pass "
                f"{args[1]}, or truncation=True"
            )
        arg = args[0]
        side, pad, return_tensors = options.side, options.pad, options.return_tensors
        add_special_tokens = options.add_special_tokens
        ids, mask, lengths = self._encode_batch(
            texts,
            max_length=options.max_length,
            truncation=options.truncation is not None,
            width=options.width,
            pad_to_multiple_of=options.multiple if pad else None,
            add_special_tokens=add_special_tokens,
            padding_side=side if pad else "right",
            texts_arg=arg,
        )
        arrays = {"input_ids": ids}
        if options.return_token_type_ids:
            arrays["token_type_ids"] = np.zeros_like(ids)
        arrays["attention_mask"] = mask
        if options.return_special_tokens_mask:
            arrays["special_tokens_mask"] = self._added_tokens_mask(
                mask.shape[1], lengths, add_special_tokens, pad and side == "left"
            )
        if not options.return_attention_mask:
            del arrays["attention_mask"]
        if return_tensors is not None:
            if not pad and len(set(lengths.tolist())) > 1:
                raise ConfigError(
                    f"padding: the rows of {arg} have different lengths ({lengths.min()} to "
                    f"{lengths.max()}); pass padding=True to return tensors"
                )
            if options.return_length:  # every row is as wide as the batch
                arrays["length"] = np.full_like(lengths, ids.shape[1])
            return _as_tensors(arrays, return_tensors)
        lists = {k: v.tolist() for k, v in arrays.items()}
        if not pad:
            kept = lengths.tolist()
            lists = {
                k: [row[:n] for row, n in zip(rows, kept, strict=True)] for k, rows in lists.items()
            }
        encoding = Encoding({k: v[0] for k, v in lists.items()} if single else lists)
        if options.return_length:  # each row as returned, as a list for a single text too
            encoding["length"] = [ids.shape[1]] * len(lengths) if pad else lengths.tolist()
        return encoding

    def _added_tokens_mask(
        self, width: int, lengths: np.ndarray, added: bool, left: bool
    ) -> np.ndarray:
        """1 on padding and on the BOS/EOS ``__call__`` added, 0 on the text's tokens
        (rows ``width`` wide holding ``lengths`` tokens each, left-padded when ``left``)."""
        import numpy as np

        starts = width - lengths if left else np.zeros_like(lengths)
        bos, eos = (self.add_bos, self.add_eos) if added else (False, False)
        first, end = starts + int(bos), starts + lengths - int(eos)
        positions = np.arange(width)
        text = (positions >= first[:, None]) & (positions < end[:, None])
        return (~text).astype(np.int64)

    def pad(
        self,
        encoded_inputs: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> Encoding:
        """Pad already-encoded features as HF ``tokenizer.pad`` does (data collators call
        it), with HF's signature in its order.

        ``encoded_inputs``: a list of dicts with ``input_ids`` (lists, arrays or tensors),
        or a dict of lists. ``input_ids`` and ``attention_mask`` are padded (a mask is made
        when missing), ``token_type_ids`` with 0 and ``special_tokens_mask`` with 1; other
        keys pass through (and become tensors with ``return_tensors``). Padding never
        truncates: a row longer than ``max_length`` under ``padding="max_length"`` is a
        ConfigError naming it (HF leaves that row as it is, and the batch comes back ragged
        or fails to become a tensor). ``padding_side`` defaults to the tokenizer's;
        ``verbose`` is ignored.
        """
        from ferrofix._tokenizer_pad import pad_features

        if verbose is not True:
            flag("verbose", verbose)
        return pad_features(
            self,
            encoded_inputs,
            padding=padding,
            max_length=max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_tensors=return_tensors,
            return_attention_mask=return_attention_mask,
        )

    # --- decoding -----------------------------------------------------------------------

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> str:
        """The text of ``ids`` (an int, a list, a 1-D numpy array or torch tensor).

        ``clean_up_tokenization_spaces`` (default: the tokenizer's attribute, False unless
        set) removes the space before punctuation and English contractions as HF does
        (``"do n't ."`` -> ``"don't."``). The byte-level models ignore it, as HF (from
        transformers 5) does for BPE tokenizers: their decoded text is already exact, and
        the clean-up would corrupt it.
        """
        skip_special_tokens = flag("skip_special_tokens", skip_special_tokens)
        text = self._native.decode(_ids_array(token_ids, "token_ids"), skip_special_tokens)
        return _clean_up(text) if self._cleans_up(clean_up_tokenization_spaces) else text

    def _cleans_up(self, clean_up_tokenization_spaces: bool | None) -> bool:
        wanted = optional_flag(
            "clean_up_tokenization_spaces",
            clean_up_tokenization_spaces,
            self.clean_up_tokenization_spaces,
        )
        return wanted and self.kind in ("simple", "char")

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[str]:
        """The texts of a 2-D array/tensor or a list of id sequences (options as ``decode``)."""
        texts = self._batch_decode(sequences, flag("skip_special_tokens", skip_special_tokens))
        if self._cleans_up(clean_up_tokenization_spaces):
            return [_clean_up(text) for text in texts]
        return texts

    def _batch_decode(self, sequences: Any, skip_special_tokens: bool) -> list[str]:
        import numpy as np

        if _torch.is_tensor(sequences):
            sequences = _torch.host_array(sequences, "sequences")
        if isinstance(sequences, np.ndarray) and sequences.ndim != 2:
            sequences = sequences.tolist()
        if not isinstance(sequences, np.ndarray) and not isinstance(sequences, Sequence):
            raise DtypeError(
                "sequences: expected a list of id sequences or a 2-D array, got "
                f"{type(sequences).__name__}"
            )
        if isinstance(sequences, np.ndarray):
            if sequences.dtype.kind not in "iu":
                raise DtypeError(f"sequences: expected integer ids, got dtype {sequences.dtype}")
            _check_id_dtype(sequences, "sequences")
            rows, width = sequences.shape
            flat = c_contiguous(np.asarray(sequences).astype(np.int64, copy=False)).reshape(-1)
            lengths = np.full(rows, width, dtype=np.int64)
        else:
            flat, lengths = self._flat_rows(sequences)
        return self._native.decode_rows(flat, lengths, skip_special_tokens)

    @staticmethod
    def _flat_rows(sequences: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """A list of id sequences as (concatenated int64 ids, each row's length)."""
        import numpy as np

        if isinstance(sequences, list):
            native = _native.core().flatten_int_lists(sequences)
            if native is not None:  # lists of plain ints, read in one native pass
                return native
        rows = [_ids_array(ids, f"sequences[{i}]") for i, ids in enumerate(sequences)]
        lengths = np.fromiter(map(len, rows), np.int64, len(rows))
        flat = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        return flat, lengths

    # --- special tokens -----------------------------------------------------------------

    def _role_token(self, role: str) -> str | None:
        index = self._role_ids.get(role)
        return None if index is None else self._tokens[index]

    # --- persistence --------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "kind": self.kind,
            "special_tokens": list(self._special_tokens),
            "unk_fallback": self.unk_fallback,
            "add_bos": self.add_bos,
            "add_eos": self.add_eos,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "model_max_length": self.model_max_length,
            "pad_token": self._role_token("pad"),
        }
        if self.kind in ("simple", "char"):
            state["vocab"] = self._tokens[len(self._special_tokens) :]
        if self.kind == "bpe":
            state["merges"] = self._native.merges()
        return state

    def __reduce__(self) -> tuple[Callable[..., Tokenizer], tuple[dict[str, Any]]]:
        return (_from_state, (self._state(),))

    def __copy__(self) -> Tokenizer:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._role_ids = dict(self._role_ids)
        return clone

    def __deepcopy__(self, memo: dict[int, Any]) -> Tokenizer:
        return self.__copy__()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tokenizer):
            return NotImplemented
        return self._state() == other._state()

    __hash__ = None  # type: ignore[assignment]

    def save_pretrained(self, directory: str | os.PathLike[str]) -> tuple[str, ...]:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``."""
        from ferrofix._tokenizer_hf import save

        return save(self, _directory(directory))

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], **overrides: Any) -> Tokenizer:
        """Read a directory written by ``save_pretrained``."""
        from ferrofix._tokenizer_hf import load_state

        tokenizer = _from_state({**load_state(_directory(directory)), **overrides})
        if cls is not Tokenizer and not isinstance(tokenizer, cls):
            raise ConfigError(
                f"directory: holds a {type(tokenizer).__name__}, not a {cls.__name__}"
            )
        return tokenizer

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, "
            f"special_tokens={self._special_tokens}, add_bos={self.add_bos}, "
            f"add_eos={self.add_eos})"
        )


def _role_properties(role: str) -> None:
    def token(self: Tokenizer) -> str | None:
        return self._role_token(role)

    def token_id(self: Tokenizer) -> int | None:
        return self._role_ids.get(role)

    token.__doc__ = f"The {role} special token, or None when there is none."
    token_id.__doc__ = f"The id of the {role} special token, or None when there is none."
    setattr(Tokenizer, f"{role}_token", property(token))
    setattr(Tokenizer, f"{role}_token_id", property(token_id))


for _role in ROLES:
    _role_properties(_role)


def _set_pad_token(self: Tokenizer, token: str) -> None:
    """Make ``token`` (already in the vocabulary) the padding token, as HF code often does."""
    self._role_ids["pad"] = self._convert_token_to_id(token)


Tokenizer.pad_token = Tokenizer.pad_token.setter(_set_pad_token)  # type: ignore[attr-defined]


def _not_unicode(arg: str, error: UnicodeEncodeError) -> ConfigError:
    """The error for a str in a constructor's lists holding a lone surrogate, which has no
    UTF-8 form (pyo3's conversion of those lists raises Python's bare UnicodeEncodeError);
    the native layer words it the same for single texts and tokens."""
    return ConfigError(
        f"{arg}: {error.object!r} is not valid Unicode (a lone surrogate at position "
        f"{error.start} has no UTF-8 form)"
    )


def _build(native_call: Callable[[], Any], **string_args: Sequence[Any]) -> Any:
    """Run a native constructor; a lone surrogate in one of ``string_args`` (lists of str
    or of str pairs) becomes a ConfigError naming the list that holds it."""
    try:
        return native_call()
    except UnicodeEncodeError as error:
        bad = error.object
        for arg, values in string_args.items():
            if any(v == bad or (isinstance(v, tuple) and bad in v) for v in values):
                raise _not_unicode(arg, error) from None
        raise _not_unicode("/".join(string_args), error) from None


@dataclasses.dataclass(slots=True)
class _CallOptions:
    """``__call__``'s options, validated once for the texts and the targets alike (slots, not
    frozen: a frozen dataclass takes ~2 us to build, a sixth of a small call)."""

    side: str
    pad: bool
    # None (no truncation), "longest_first", "only_first" or "only_second".
    truncation: str | None
    width: str
    max_length: int | None
    multiple: int | None
    return_tensors: str | None
    add_special_tokens: bool
    return_attention_mask: bool
    return_special_tokens_mask: bool
    return_token_type_ids: bool
    return_length: bool
    # Overflowing windows: a text that does not fit becomes rows sharing `stride` tokens.
    overflow: bool
    stride: int
    # Each text is a list of words (is_split_into_words), encoded word by word.
    split: bool


# A ``__call__`` argument as ``(batch of texts, whether it was one text)``: a plain tuple,
# as a NamedTuple costs ~0.4 us to build, a few percent of a small call.
_Batch = tuple[Sequence[Any], bool]


def _batch_of(name: str, value: Any, split: bool) -> _Batch:
    """``value`` as a batch: of texts (from a str, or a list or tuple of them), or with
    ``split``, of word lists (from one list of words, or a list of such lists)."""
    if not split:
        if isinstance(value, str):
            return [value], True
        if not isinstance(value, list | tuple):
            raise DtypeError(f"{name}: expected str or a list of str, got {type(value).__name__}")
        return value, False
    if isinstance(value, list | tuple):
        if all(isinstance(word, str) for word in value):
            return [value], True
        if all(isinstance(words, list | tuple) for words in value):
            for i, words in enumerate(value):
                for k, word in enumerate(words):
                    if not isinstance(word, str):
                        raise DtypeError(
                            f"{name}[{i}][{k}]: expected str (a word), got {type(word).__name__}"
                        )
            return value, False
    raise DtypeError(
        f"{name}: with is_split_into_words, expected a list of words (str) or a list of such "
        f"lists, got {_kind_name(value)}"
    )


def _kind_name(value: Any) -> str:
    if isinstance(value, list | tuple) and value:
        return f"a {type(value).__name__} holding {type(value[0]).__name__}"
    return type(value).__name__


def _texts_and_targets(text: Any, text_target: Any, split: bool) -> tuple[Any, Any]:
    """``__call__``'s texts and targets as batches (None where not given), at least one;
    given both, they must pair up one to one."""
    if text is None and text_target is None:
        raise ConfigError("text: pass a str or a list of str (or text_target), got None")
    if text is None:
        return None, _batch_of("text_target", text_target, split)
    texts = _batch_of("text", text, split)
    return texts, _partner_batch("text_target", text_target, "text", texts, split)


def _partner_batch(
    name: str, value: Any, first_name: str, first: _Batch | None, split: bool
) -> _Batch | None:
    """``value``, the batch that goes with ``first``, as a batch; None when not given. It
    must pair up with ``first`` one to one."""
    if value is None:
        return None
    if first is None:
        raise ConfigError(f"{name}: goes with {first_name}, which is None; pass both or neither")
    batch = _batch_of(name, value, split)
    if batch[1] != first[1] or len(batch[0]) != len(first[0]):
        raise ConfigError(
            f"{name}: must be the same kind as {first_name} (one text, or a list as long as "
            f"{first_name}); got {_batch_kind(batch, split)} for {_batch_kind(first, split)}"
        )
    return batch


def _batch_kind(batch: _Batch, split: bool) -> str:
    texts, one = batch
    if one:
        return "one list of words" if split else "one str"
    return f"a list of {len(texts)}"


def _row_options(**given: object) -> tuple[bool, int, bool]:
    """``(return_overflowing_tokens, stride, is_split_into_words)`` checked; raises naming
    ``return_offsets_mapping``, which ferrofix tokenizers do not do, unless False."""
    if flag("return_offsets_mapping", given["return_offsets_mapping"]):
        raise ConfigError(
            "return_offsets_mapping: ferrofix tokenizers do not track character offsets; pass False"
        )
    overflow = flag("return_overflowing_tokens", given["return_overflowing_tokens"])
    stride = integer("stride", given["stride"], low=0)
    if stride and not overflow:
        raise ConfigError(
            "stride: only applies to overflowing windows; pass return_overflowing_tokens=True "
            "or stride=0"
        )
    return overflow, stride, flag("is_split_into_words", given["is_split_into_words"])


def _listed(name: str, value: Any, expected: str) -> list[Any]:
    """``list(value)``, or a DtypeError naming ``name`` when ``value`` cannot be iterated
    (a number, None, a 0-d array or tensor)."""
    try:
        return list(value)
    except TypeError:
        raise DtypeError(f"{name}: expected {expected}, got {type(value).__name__}") from None


def _directory(directory: Any) -> str:
    """``directory`` as a str path, or a DtypeError naming it (bytes paths included: the
    files written inside it are named by str)."""
    try:
        path = os.fspath(directory)
    except TypeError:
        path = None
    if not isinstance(path, str):
        raise DtypeError(
            f"directory: expected a path (str or os.PathLike), got {type(directory).__name__}"
        )
    return path


def _flags(**flags: object) -> list[bool]:
    """The constructor's on/off options, each True or False (or a numpy bool)."""
    return [flag(name, value) for name, value in flags.items()]


def _specials(special_tokens: Iterable[str]) -> list[str]:
    if isinstance(special_tokens, str):
        raise DtypeError("special_tokens: expected a list of str, got str")
    tokens = _listed("special_tokens", special_tokens, "a list of str")
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise DtypeError(f"special_tokens[{i}]: expected str, got {type(token).__name__}")
    return tokens


class SimpleTokenizer(Tokenizer):
    """Whitespace-split words looked up in ``vocab`` (ids from 7, after the specials).

    An unknown word raises ``UnknownTokenError`` (a ``ValueError``) with the message
    ``Token 'x' not in vocab``, or maps to ``[UNK]`` with ``unk_fallback=True``.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        unk_fallback: bool = False,
        add_bos: bool = False,
        add_eos: bool = False,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        **options: Any,
    ) -> None:
        if isinstance(vocab, str):
            raise DtypeError("vocab: expected a list of str, got str")
        words = _listed("vocab", vocab, "a list of str")
        for i, word in enumerate(words):
            if not isinstance(word, str):
                raise DtypeError(f"vocab[{i}]: expected str, got {type(word).__name__}")
        specials = _specials(special_tokens)
        unk_fallback, add_bos, add_eos = _flags(
            unk_fallback=unk_fallback, add_bos=add_bos, add_eos=add_eos
        )
        native = _build(
            lambda: _native.core().Tokenizer.simple(
                words, specials, unk_fallback, add_bos, add_eos
            ),
            vocab=words,
            special_tokens=specials,
        )
        self._setup(native, **options)

    @classmethod
    def for_numbers(cls, n: int, **options: Any) -> SimpleTokenizer:
        """A tokenizer over the words ``"0"`` .. ``str(n - 1)``."""
        n = integer("n", n, low=0)
        check_outputs_fit("n", (n,), _BYTES_PER_WORD, "ask for fewer numbers")
        return cls([str(i) for i in range(n)], **options)


class CharTokenizer(Tokenizer):
    """One id per character of ``alphabet`` (a string or a list of one-character strings)."""

    def __init__(
        self,
        alphabet: str | Sequence[str],
        *,
        unk_fallback: bool = False,
        add_bos: bool = False,
        add_eos: bool = False,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        **options: Any,
    ) -> None:
        chars = _listed("alphabet", alphabet, "a str or a list of characters")
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ConfigError(f"alphabet[{i}]: must be a single character, got {c!r}")
        specials = _specials(special_tokens)
        unk_fallback, add_bos, add_eos = _flags(
            unk_fallback=unk_fallback, add_bos=add_bos, add_eos=add_eos
        )
        native = _build(
            lambda: _native.core().Tokenizer.char(chars, specials, unk_fallback, add_bos, add_eos),
            alphabet=chars,
            special_tokens=specials,
        )
        self._setup(native, **options)


class ByteTokenizer(Tokenizer):
    """One id per UTF-8 byte (ids 7..262). Decoding invalid UTF-8 yields U+FFFD."""

    def __init__(
        self,
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        **options: Any,
    ) -> None:
        specials = _specials(special_tokens)
        add_bos, add_eos = _flags(add_bos=add_bos, add_eos=add_eos)
        native = _build(
            lambda: _native.core().Tokenizer.byte(specials, add_bos, add_eos),
            special_tokens=specials,
        )
        self._setup(native, **options)


class BPETokenizer(Tokenizer):
    """Byte-level BPE: GPT-2 pre-tokenization, then ranked merges over byte tokens."""

    def __init__(
        self,
        merges: Sequence[tuple[str, str] | str] = (),
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        **options: Any,
    ) -> None:
        pairs = []
        for i, merge in enumerate(_listed("merges", merges, "a list of (left, right) pairs")):
            if isinstance(merge, str):
                merge = tuple(merge.split(" "))
            pair = isinstance(merge, tuple | list) and len(merge) == 2
            if not pair or not all(isinstance(t, str) for t in merge):
                raise ConfigError(
                    f"merges[{i}]: must be a (left, right) pair of str or 'left right'; "
                    f"got {merge!r}"
                )
            pairs.append((merge[0], merge[1]))
        specials = _specials(special_tokens)
        add_bos, add_eos = _flags(add_bos=add_bos, add_eos=add_eos)
        native = _build(
            lambda: _native.core().Tokenizer.bpe(pairs, specials, add_bos, add_eos),
            merges=pairs,
            special_tokens=specials,
        )
        self._setup(native, **options)

    @classmethod
    def from_merges(cls, merges: Sequence[tuple[str, str] | str], **options: Any) -> BPETokenizer:
        """A tokenizer from merges in rank order, as token strings (``("Ġ", "t")``) or HF
        ``merges.txt`` lines (``"Ġ t"``)."""
        return cls(merges, **options)

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The merges in rank order, as (left, right) token strings."""
        return self._native.merges()

    @classmethod
    def train(
        cls,
        corpus: Iterable[str],
        vocab_size: int,
        min_frequency: int = 2,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        *,
        add_bos: bool = False,
        add_eos: bool = False,
        **options: Any,
    ) -> BPETokenizer:
        """Learn merges from ``corpus`` (texts) until ``vocab_size`` ids or until the most
        frequent pair occurs fewer than ``min_frequency`` times. Deterministic: the same
        corpus gives the same merges on any machine and thread count."""
        texts = [corpus] if isinstance(corpus, str) else _listed("corpus", corpus, "a list of str")
        vocab_size = integer("vocab_size", vocab_size, low=0)
        min_frequency = integer("min_frequency", min_frequency, low=1)
        specials = _specials(special_tokens)
        add_bos, add_eos = _flags(add_bos=add_bos, add_eos=add_eos)
        native = _build(
            lambda: _native.core().Tokenizer.train_bpe(
                texts, vocab_size, min_frequency, specials, add_bos, add_eos
            ),
            corpus=texts,
            special_tokens=specials,
        )
        tokenizer = object.__new__(cls)
        tokenizer._setup(native, **options)
        return tokenizer


_KINDS: dict[str, type[Tokenizer]] = {
    "simple": SimpleTokenizer,
    "char": CharTokenizer,
    "byte": ByteTokenizer,
    "bpe": BPETokenizer,
}


def _from_state(state: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from ``Tokenizer._state()`` (pickle, copy, from_pretrained)."""
    state = dict(state)
    kind = state.pop("kind")
    kind = choice("kind", kind, tuple(_KINDS))
    pad_token = state.pop("pad_token", None)
    if kind in ("simple", "char"):
        args: tuple[Any, ...] = (state.pop("vocab"),)
    elif kind == "bpe":
        args = (state.pop("merges"),)
    else:
        args = ()
    if kind in ("byte", "bpe"):
        state.pop("unk_fallback", None)
    tokenizer = _KINDS[kind](*args, **state)
    if pad_token is not None:
        tokenizer.pad_token = pad_token
    return tokenizer


def load_tokenizer(directory: str | os.PathLike[str], **overrides: Any) -> Tokenizer:
    """The tokenizer ``save_pretrained`` wrote to ``directory``, of whatever kind."""
    return Tokenizer.from_pretrained(directory, **overrides)


# --- what the fixtures build (ferrofix.fixtures.tokenizers) ------------------------------------

SMALL_VOCAB_SIZE = 50
BPE_FIXTURE_VOCAB_SIZE = 512
CHAR_FIXTURE_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 .,!?'-"


def fixture_vocab() -> list[str]:
    """The words ``"0"`` .. ``"49"``, a fresh list each call (the ``small_vocab`` fixture)."""
    return [str(i) for i in range(SMALL_VOCAB_SIZE)]


def fixture_corpus() -> list[str]:
    """The small English corpus shipped with ferrofix (the ``bpe_tokenizer`` training set)."""
    text = (
        importlib.resources.files("ferrofix")
        .joinpath("data/tiny_corpus.txt")
        .read_text(encoding="utf-8")
    )
    return [line for line in text.splitlines() if line.strip()]


# Each fixture tokenizer is built once per process and every test gets a copy: a copy
# shares the immutable native tokenizer and has its own settings, and costs ~1 us where
# building one costs 25-90 us (training the BPE one, milliseconds).
@functools.cache
def _trained_bpe() -> BPETokenizer:
    return BPETokenizer.train(fixture_corpus(), BPE_FIXTURE_VOCAB_SIZE)


_FIXTURE_BUILDERS: dict[str, Callable[[], Tokenizer]] = {
    "simple": functools.cache(lambda: SimpleTokenizer(fixture_vocab())),
    "char": functools.cache(lambda: CharTokenizer(CHAR_FIXTURE_ALPHABET)),
    "byte": functools.cache(ByteTokenizer),
    "bpe": _trained_bpe,
}


def fixture_tokenizer(kind: str) -> Tokenizer:
    """A copy of the fixtures' tokenizer of ``kind`` (simple, char, byte or bpe)."""
    kind = choice("kind", kind, tuple(_FIXTURE_BUILDERS))
    return copy.copy(_FIXTURE_BUILDERS[kind]())


def make_fixture_tokenizer(kind: str = "simple", **options: Any) -> Tokenizer:
    """What ``make_tokenizer(kind, **options)`` builds: the fixtures' defaults for whatever
    ``options`` leaves out."""
    kind = choice("kind", kind, tuple(_KINDS))
    if kind == "simple":
        return SimpleTokenizer(options.pop("vocab", fixture_vocab()), **options)
    if kind == "char":
        return CharTokenizer(options.pop("alphabet", CHAR_FIXTURE_ALPHABET), **options)
    if kind == "byte":
        return ByteTokenizer(**options)
    corpus = options.pop("corpus", None)
    vocab_size = options.pop("vocab_size", BPE_FIXTURE_VOCAB_SIZE)
    # The session's trained copy when nothing differs (type first: an array vocab_size
    # would make == ambiguous; train checks it).
    default_size = type(vocab_size) is int and vocab_size == BPE_FIXTURE_VOCAB_SIZE
    if corpus is None and default_size and not options:
        return fixture_tokenizer("bpe")
    return BPETokenizer.train(fixture_corpus() if corpus is None else corpus, vocab_size, **options)
