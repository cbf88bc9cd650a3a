"""The calls a test makes on tiny inputs, per call: ferrofix against what suites write in
conftest.py and the library they would otherwise call.

Unit tests pass a handful of texts, a (4, 16) batch, a few lengths: there the whole-call
cost (argument checks, the native call, building arrays) is the figure that adds up over a
suite, not throughput. Each case runs the same inputs through every contender, checks they
agree where the result is deterministic, and times them interleaved repeat by repeat.

Run: python benchmarks/bench_small_calls.py
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import timed_side_by_side, write_table
from ferrofix import assertions, loss, noise, packing
from ferrofix.tokenizers import SimpleTokenizer

TEXTS = ["3 14 15 9 26", "5 35", "8 9 7 9 3 2 38 4", "6 26 43"]
EPS = 1e-3


class ConftestTokenizer:
    """Space-split words, a vocab dict, padding into tensors: the hand-rolled kind."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        encoded = [[self.vocab[w] for w in t.split()] for t in texts]
        width = max(len(e) for e in encoded)
        ids = [e + [0] * (width - len(e)) for e in encoded]
        mask = [[1] * len(e) + [0] * (width - len(e)) for e in encoded]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}


def hf_word_level(ours: SimpleTokenizer):  # type: ignore[no-untyped-def]
    """transformers' fast tokenizer over the same word vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(ours.get_vocab(), unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")


def tokenizer_case() -> dict[str, Callable[[], object]]:
    ours = SimpleTokenizer.for_numbers(50)
    hf = hf_word_level(ours)
    conftest = ConftestTokenizer(ours.get_vocab())
    expected = ours(TEXTS, padding=True, return_tensors="pt")
    for other in (hf(TEXTS, padding=True, return_tensors="pt"), conftest(TEXTS)):
        assert torch.equal(other["input_ids"], expected["input_ids"])
        assert torch.equal(other["attention_mask"], expected["attention_mask"])
    return {
        "ferrofix": lambda: ours(TEXTS, padding=True, return_tensors="pt"),
        "conftest.py": lambda: conftest(TEXTS),
        "library": lambda: hf(TEXTS, padding=True, return_tensors="pt"),
    }


def collator_case() -> dict[str, Callable[[], object]]:
    from transformers import DataCollatorWithPadding

    ours = SimpleTokenizer.for_numbers(50)
    features = [{"input_ids": ours.encode(text)} for text in TEXTS]

    def hand_rolled() -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        ids = [f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in features]
        mask = [[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}

    with_ours = DataCollatorWithPadding(ours)
    with_hf = DataCollatorWithPadding(hf_word_level(ours))
    expected = hand_rolled()
    for batch in (with_ours(features), with_hf(features)):
        assert all(torch.equal(batch[k], expected[k]) for k in expected)
    return {
        "ferrofix": lambda: with_ours(features),
        "conftest.py": hand_rolled,
        "library": lambda: with_hf(features),
    }


def masking_case() -> dict[str, Callable[[], object]]:
    ids = torch.arange(64).reshape(4, 16) % 50 + 7
    generator = torch.Generator().manual_seed(0)

    def hand_rolled() -> tuple[torch.Tensor, torch.Tensor]:
        masked = torch.rand(ids.shape, generator=generator) < 0.15
        return torch.where(masked, 2, ids), masked

    return {
        "ferrofix": lambda: noise.mask_tokens(ids, 0.15, 2, seed=0),
        "conftest.py": hand_rolled,
    }


def schedule_case() -> dict[str, Callable[[], object]]:
    schedule = noise.LogLinearSchedule(eps=EPS, return_tensors="pt")
    t = torch.tensor([0.1, 0.4, 0.7, 0.95], dtype=torch.float64)

    def hand_rolled() -> tuple[torch.Tensor, torch.Tensor]:
        # MDLM's log-linear schedule as suites write it: rate and total noise at t.
        return (1 - EPS) / (1 - (1 - EPS) * t), -torch.log1p(-(1 - EPS) * t)

    rate, total = schedule(t)
    expected_rate, expected_total = hand_rolled()
    torch.testing.assert_close(rate, expected_rate)
    torch.testing.assert_close(total, expected_total)
    return {"ferrofix": lambda: schedule(t), "conftest.py": hand_rolled}


def sample_t_case() -> dict[str, Callable[[], object]]:
    schedule = noise.LogLinearSchedule(return_tensors="pt")
    generator = torch.Generator().manual_seed(0)

    def hand_rolled() -> torch.Tensor:
        # The antithetic sampler of MDLM-style collators.
        u = torch.rand(4, generator=generator, dtype=torch.float64)
        u = (u / 4 + torch.arange(4, dtype=torch.float64) / 4) % 1
        return (1 - EPS) * u + EPS

    return {
        "ferrofix": lambda: schedule.sample_t(4, eps=EPS, seed=0),
        "conftest.py": hand_rolled,
    }


def python_bfd(lengths: list[int], capacity: int) -> list[int]:
    """Best-fit decreasing, the plain way: the fullest bin that still fits."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    loads: list[int] = []
    bin_of = [0] * len(lengths)
    for i in order:
        best = -1
        for b, load in enumerate(loads):
            if load + lengths[i] <= capacity and (best < 0 or load > loads[best]):
                best = b
        if best < 0:
            loads.append(0)
            best = len(loads) - 1
        loads[best] += lengths[i]
        bin_of[i] = best
    return bin_of


def packing_case() -> dict[str, Callable[[], object]]:
    lengths = [int(v) for v in (np.arange(16) * 37) % 60 + 3]
    ours = packing.pack(lengths, 64).bin_of_item.tolist()
    assert ours == python_bfd(lengths, 64)
    return {
        "ferrofix": lambda: packing.pack(lengths, 64),
        "conftest.py": lambda: python_bfd(lengths, 64),
    }


def compare_case() -> dict[str, Callable[[], object]]:
    gen = torch.Generator().manual_seed(0)
    expected = torch.randn(4, 16, generator=gen)
    actual = expected + 1e-7 * torch.randn(4, 16, generator=gen)
    return {
        "ferrofix": lambda: assertions.assert_close(actual, expected),
        "library": lambda: torch.testing.assert_close(actual, expected),
    }


def loss_case() -> dict[str, Callable[[], object]]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 16, 64, generator=gen, requires_grad=True)
    labels = torch.randint(0, 64, (2, 16), generator=gen)
    labels[:, :3] = -100

    def ours() -> None:
        logits.grad = None
        loss.causal_lm_loss(logits, labels).backward()

    def hand_rolled() -> None:
        logits.grad = None
        shifted = logits[:, :-1].reshape(-1, 64)
        F.cross_entropy(shifted, labels[:, 1:].reshape(-1), ignore_index=-100).backward()

    ours()
    grad = logits.grad.clone()
    hand_rolled()
    torch.testing.assert_close(grad, logits.grad)
    return {"ferrofix": ours, "conftest.py": hand_rolled}


CASES: dict[str, tuple[str, Callable[[], dict[str, Callable[[], object]]], str]] = {
    "tokenize 4 short texts, padded, to torch": (
        "SimpleTokenizer",
        tokenizer_case,
        "HF PreTrainedTokenizerFast (WordLevel)",
    ),
    "DataCollatorWithPadding on 4 encoded texts": (
        "SimpleTokenizer",
        collator_case,
        "the same collator with HF PreTrainedTokenizerFast",
    ),
    "mask 15% of a (4, 16) batch (torch)": ("noise.mask_tokens", masking_case, ""),
    "log-linear rate and total noise at 4 times (torch)": (
        "LogLinearSchedule(t)",
        schedule_case,
        "",
    ),
    "antithetic sample_t(4) (torch)": ("sample_t", sample_t_case, ""),
    "best-fit-decreasing 16 lengths into 64": ("packing.pack", packing_case, ""),
    "assert_close on (4, 16) float32 tensors": (
        "assert_close",
        compare_case,
        "torch.testing.assert_close",
    ),
    "causal LM loss + backward, (2, 16, 64) float32": ("causal_lm_loss", loss_case, ""),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per timed repeat")
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: torch's own threads only add overhead

    def repeated(fn: Callable[[], object]) -> Callable[[], object]:
        return lambda: [fn() for _ in range(args.calls)]

    def cells(us: dict[str, float], name: str) -> list[str]:
        """Microseconds of contender `name` and its time over ferrofix's (blank if none)."""
        if name not in us:
            return ["", ""]
        return [f"{us[name]:.1f}", f"{us[name] / us['ferrofix']:.2f}x"]

    rows = []
    for case, (ours_name, build, library_name) in CASES.items():
        contenders = build()
        ms = timed_side_by_side({k: repeated(v) for k, v in contenders.items()}, args.repeats)
        us = {name: value * 1e3 / args.calls for name, value in ms.items()}
        rows.append(
            [
                case,
                ours_name,
                f"{us['ferrofix']:.1f}",
                *cells(us, "conftest.py"),
                library_name,
                *cells(us, "library"),
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    header = [
        "one call",
        "ferrofix",
        "ferrofix (us)",
        "conftest.py-style (us)",
        "its time / ferrofix's",
        "library",
        "library (us)",
        "its time / ferrofix's",
    ]
    notes = (
        f"Medians of {args.repeats} repeats of {args.calls} calls each, the contenders "
        "interleaved repeat by repeat on the same inputs (their results checked equal where "
        "they are deterministic). torch runs on one intra-op thread, its fastest for tensors "
        "this small. conftest.py-style: what suites hand-roll in plain Python or torch. "
        "A ratio above 1 means ferrofix's call is that many times faster. Inputs this small "
        "never wake ferrofix's thread pool: the figures are whole-call costs."
    )
    write_table(
        "small_calls", "Small calls: ferrofix vs hand-rolled and library", header, rows, notes
    )


if __name__ == "__main__":
    main()
