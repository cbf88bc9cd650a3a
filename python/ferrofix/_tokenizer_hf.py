"""Hugging Face interop of the tokenizers: ``save_pretrained`` / ``from_pretrained``.

``tokenizer.json`` is written so that ``tokenizers.Tokenizer.from_file`` and
``transformers.PreTrainedTokenizerFast`` give the same ids as ferrofix:

- special tokens are HF *added tokens* (``special: true, normalized: false``), matched
  anywhere in the text like ours;
- simple: ``WhitespaceSplit`` + ``WordLevel``; char: ``Split`` isolating every character +
  ``WordLevel`` + ``Fuse`` decoder; byte: ``ByteLevel`` (no regex) + ``BPE`` with no merges;
  bpe: ``ByteLevel`` (GPT-2 regex) + ``BPE`` (``ignore_merges: false``);
- ``add_bos``/``add_eos`` become a ``TemplateProcessing`` post-processor.

``tokenizer_config.json`` carries a ``ferrofix`` section with what HF has no field for.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ferrofix.errors import ConfigError

if TYPE_CHECKING:
    from ferrofix.tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"


def _template(tokenizer: Tokenizer) -> dict[str, Any] | None:
    if not (tokenizer.add_bos or tokenizer.add_eos):
        return None

    # A pair's second part, its BOS/EOS included, is token type 1, as ferrofix's own pairs
    # (and HF's default, without a template) type it.
    def part(name: str, type_id: int) -> list[dict[str, Any]]:
        def special(token: str) -> dict[str, Any]:
            return {"SpecialToken": {"id": token, "type_id": type_id}}

        sequence = {"Sequence": {"id": name, "type_id": type_id}}
        return [*map(special, used), sequence, *map(special, tail)]

    used = [t for t, on in ((tokenizer.bos_token, tokenizer.add_bos),) if on]
    tail = [t for t, on in ((tokenizer.eos_token, tokenizer.add_eos),) if on]
    single = part("A", 0)
    pair = [*single, *part("B", 1)]
    tokens = {
        token: {"id": token, "ids": [tokenizer.convert_tokens_to_ids(token)], "tokens": [token]}
        for token in (*used, *tail)
    }
    return {"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": tokens}


def _model(tokenizer: Tokenizer) -> tuple[dict[str, Any], Any, Any]:
    """(model, pre_tokenizer, decoder) for ``tokenizer.json``."""
    vocab = tokenizer.get_vocab()
    if tokenizer.kind in ("simple", "char"):
        model = {"type": "WordLevel", "vocab": vocab, "unk_token": tokenizer.unk_token or "[UNK]"}
        if tokenizer.kind == "simple":
            return model, {"type": "WhitespaceSplit"}, None
        split = {
            "type": "Split",
            "pattern": {"Regex": "[\\s\\S]"},
            "behavior": "Isolated",
            "invert": False,
        }
        return model, split, {"type": "Fuse"}
    byte_level = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": False,
        "use_regex": tokenizer.kind == "bpe",
    }
    model = {
        "type": "BPE",
        "dropout": None,
        "unk_token": None,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
        "vocab": vocab,
        "merges": [list(m) for m in tokenizer._native.merges()],
    }
    return model, byte_level, dict(byte_level)


def tokenizer_json(tokenizer: Tokenizer) -> dict[str, Any]:
    """The HF ``tokenizer.json`` document of ``tokenizer``."""
    model, pre_tokenizer, decoder = _model(tokenizer)
    added = [
        {
            "id": i,
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, token in enumerate(tokenizer.special_tokens)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": _template(tokenizer),
        "decoder": decoder,
        "model": model,
    }


def _special_tokens_map(tokenizer: Tokenizer) -> dict[str, str]:
    from ferrofix.tokenizers import ROLES

    roles = {f"{role}_token": getattr(tokenizer, f"{role}_token") for role in ROLES}
    return {name: token for name, token in roles.items() if token is not None}


def save(tokenizer: Tokenizer, directory: str) -> tuple[str, ...]:
    os.makedirs(directory, exist_ok=True)
    state = tokenizer._state()
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": tokenizer.padding_side,
        "truncation_side": tokenizer.truncation_side,
        "clean_up_tokenization_spaces": tokenizer.clean_up_tokenization_spaces,
        **_special_tokens_map(tokenizer),
        "ferrofix": {
            key: state[key]
            for key in ("kind", "special_tokens", "unk_fallback", "add_bos", "add_eos")
        },
    }
    limit = tokenizer._model_limit()
    if limit is not None:  # without one, HF's loader sets its own "no limit"
        config["model_max_length"] = limit
    documents = {
        TOKENIZER_FILE: tokenizer_json(tokenizer),
        CONFIG_FILE: config,
        SPECIAL_TOKENS_MAP_FILE: _special_tokens_map(tokenizer),
    }
    paths = []
    for name, document in documents.items():
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(document, f, ensure_ascii=False, indent=1)
            f.write("\n")
        paths.append(path)
    return tuple(paths)


def _read(directory: str, name: str) -> dict[str, Any]:
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"directory: {directory!r} has no {name}; save one with save_pretrained"
        ) from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"directory: {path} is not valid JSON ({error})") from None


def load_state(directory: str) -> dict[str, Any]:
    """The ``Tokenizer._state()`` saved in ``directory``."""
    config = _read(directory, CONFIG_FILE)
    document = _read(directory, TOKENIZER_FILE)
    section = config.get("ferrofix")
    if not isinstance(section, dict) or "kind" not in section:
        raise ConfigError(
            f"directory: {directory!r} was not written by a ferrofix tokenizer "
            f"({CONFIG_FILE} has no 'ferrofix' section)"
        )
    state: dict[str, Any] = dict(section)
    state["padding_side"] = config.get("padding_side", "right")
    state["truncation_side"] = config.get("truncation_side", "right")
    state["model_max_length"] = config.get("model_max_length")
    state["clean_up_tokenization_spaces"] = config.get("clean_up_tokenization_spaces", False)
    state["pad_token"] = config.get("pad_token")
    specials = state["special_tokens"]
    model = document.get("model", {})
    if state["kind"] in ("simple", "char"):
        by_id = sorted(model.get("vocab", {}).items(), key=lambda item: item[1])
        state["vocab"] = [token for token, _ in by_id[len(specials) :]]
    if state["kind"] == "bpe":
        state["merges"] = [
            tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])
        ]
    return state
