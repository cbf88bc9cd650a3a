"""One test suite, its conftest.py fixtures hand-rolled vs swapped for ferrofix's.

Two copies of a small LM suite are written to a temporary directory with the same test file
(tokenize and decode, an MDLM collation step, an ARLM loss step with backward, packing
documents into rows). They differ only in where the fixtures and one helper come from:

- hand-rolled: a conftest.py of the kind suites write (a dict-based word tokenizer class,
  a log-linear schedule and masking in torch, a shift + ``F.cross_entropy`` loss, a
  first-fit-decreasing packer in Python), run with ``-p no:ferrofix`` so the plugin is not
  loaded;
- ferrofix: the same fixture names from ferrofix (``simple_tokenizer``,
  ``loglinear_schedule``, ``causal_lm_loss``) and ``ferrofix.noise.mask_tokens`` /
  ``ferrofix.packing.pack``, with the plugin loaded as after ``pip install``.

Each suite is written twice: with tiny inputs (what unit tests pass) and with small-batch
inputs (32 texts, a (4, 64, 512) loss, 200 documents). Each run is a fresh ``pytest``
process; the two suites alternate so machine drift hits both.
Reported: the whole run's wall time (interpreter, torch import, collection, tests) and the
test loop alone (first test's setup to last test's teardown, timed by a hook in both
suites' conftest.py), per test. Run: python benchmarks/bench_suite.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_table

CASES = 100  # parametrized cases per test function; four functions

# Both suites' conftest.py start with this: torch, which a suite's own fixtures (its models)
# import either way, and a hook that times the test loop only. Without the import here,
# the swapped suite would also be measured importing torch later, during collection (~0.2 s
# slower under pytest's collection than at conftest load) and never in xdist's controller
# (~2 s faster), which says nothing about the fixtures.
TIMING_HOOK = """
import json, os, time

import pytest
import torch  # noqa: F401


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        if not hasattr(session.config, "workerinput"):  # xdist's controller, or no xdist
            with open(os.environ["SUITE_TIMING_FILE"], "w") as out:
                seconds = time.perf_counter() - start
                json.dump({"seconds": seconds, "tests": session.testscollected}, out)
"""

HAND_ROLLED_CONFTEST = '''
import torch
import torch.nn.functional as F

SPECIALS = ["[PAD]", "[CLS]", "[MASK]", "[EOS]", "[BOS]", "[SEP]", "[UNK]"]


class SimpleTokenizer:
    """Whitespace words looked up in a dict, specials first."""

    def __init__(self, vocab):
        self.vocab = {token: i for i, token in enumerate(SPECIALS + list(vocab))}
        self.ids_to_tokens = {i: token for token, i in self.vocab.items()}
        self.pad_token_id = self.vocab["[PAD]"]
        self.mask_token_id = self.vocab["[MASK]"]
        self.vocab_size = len(self.vocab)

    def encode(self, text):
        ids = []
        for token in text.split():
            if token not in self.vocab:
                raise ValueError(f"Token '{token}' not in vocab")
            ids.append(self.vocab[token])
        return ids

    def decode(self, ids, skip_special_tokens=False):
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        tokens = [self.ids_to_tokens[i] for i in ids]
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in SPECIALS]
        return " ".join(tokens)

    def __call__(self, texts, padding=True, return_tensors="pt"):
        rows = [self.encode(text) for text in texts]
        width = max(len(row) for row in rows)
        ids = [row + [self.pad_token_id] * (width - len(row)) for row in rows]
        mask = [[1] * len(row) + [0] * (width - len(row)) for row in rows]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}


class LogLinearSchedule:
    """MDLM's log-linear schedule: alpha(t) = 1 - (1 - eps) t."""

    def __init__(self, eps=1e-3):
        self.eps = eps

    def sample_t(self, batch_size, seed):
        generator = torch.Generator().manual_seed(seed)
        offset = torch.rand(1, generator=generator)
        u = (torch.arange(batch_size) / batch_size + offset) % 1  # antithetic
        return (1 - self.eps) * u + self.eps

    def mask_probability(self, t):
        return (1 - self.eps) * t


@pytest.fixture
def small_vocab():
    return [str(i) for i in range(50)]


@pytest.fixture
def simple_tokenizer(small_vocab):
    return SimpleTokenizer(small_vocab)


@pytest.fixture
def loglinear_schedule():
    return LogLinearSchedule()


@pytest.fixture
def causal_lm_loss():
    def loss(logits, labels):
        shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
        return F.cross_entropy(shifted, labels[:, 1:].reshape(-1), ignore_index=-100)

    return loss
'''

HAND_ROLLED_HELPERS = '''
import torch


def mask_tokens(input_ids, mask_prob, mask_token_id, *, seed):
    generator = torch.Generator().manual_seed(seed)
    masked = torch.rand(input_ids.shape, generator=generator) < mask_prob
    return torch.where(masked, mask_token_id, input_ids), masked


def pack_rows(lengths, capacity):
    """First-fit decreasing: a list of rows, each a list of document indices."""
    rows, free = [], []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, space in enumerate(free):
            if lengths[i] <= space:
                rows[row].append(i)
                free[row] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(capacity - lengths[i])
    return rows
'''

FERROFIX_CONFTEST = ""  # the plugin provides simple_tokenizer, loglinear_schedule, ...

FERROFIX_HELPERS = """
from ferrofix.noise import mask_tokens
from ferrofix.packing import pack


def pack_rows(lengths, capacity):
    return pack(lengths, capacity, strategy="ffd").bins()
"""

# Input sizes of the test bodies: what unit tests pass (tiny), and what collator, loss and
# packer tests on a realistic batch pass (small batch).
SIZES = {
    "tiny inputs": {
        "texts": 8,
        "words": 9,
        "batch": 2,
        "seq": 16,
        "vocab": 64,
        "docs": 24,
        "capacity": 64,
    },
    "small-batch inputs": {
        "texts": 32,
        "words": 64,
        "batch": 4,
        "seq": 64,
        "vocab": 512,
        "docs": 200,
        "capacity": 256,
    },
}

TESTS = """
import pytest
import torch

from helpers import mask_tokens, pack_rows

CASES = {cases}


def texts_for(case):
    words = [str((case * 7 + k) % 50) for k in range({texts} + {words})]
    return [" ".join(words[k : k + 1 + (case + k) % {words}]) for k in range({texts})]


@pytest.mark.parametrize("case", range(CASES))
def test_tokenize_then_decode(case, simple_tokenizer):
    texts = texts_for(case)
    batch = simple_tokenizer(texts, padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == len(texts)
    assert int(batch["attention_mask"][0].sum()) == len(texts[0].split())
    assert simple_tokenizer.decode(batch["input_ids"][1], skip_special_tokens=True) == texts[1]


@pytest.mark.parametrize("case", range(CASES))
def test_mdlm_collation(case, simple_tokenizer, loglinear_schedule):
    batch = simple_tokenizer(texts_for(case), padding=True, return_tensors="pt")
    ids = batch["input_ids"]
    t = loglinear_schedule.sample_t(ids.shape[0], seed=case)
    prob = loglinear_schedule.mask_probability(t)[:, None]
    noisy, masked = mask_tokens(ids, prob, simple_tokenizer.mask_token_id, seed=case)
    assert bool((noisy[masked] == simple_tokenizer.mask_token_id).all())
    assert torch.equal(noisy[~masked], ids[~masked])


@pytest.mark.parametrize("case", range(CASES))
def test_arlm_loss_step(case, causal_lm_loss):
    generator = torch.Generator().manual_seed(case)
    logits = torch.randn({batch}, {seq}, {vocab}, generator=generator, requires_grad=True)
    labels = torch.randint(0, {vocab}, ({batch}, {seq}), generator=generator)
    labels[:, :2] = -100
    loss = causal_lm_loss(logits, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[:, -1].abs().sum() == 0  # the last position predicts nothing


@pytest.mark.parametrize("case", range(CASES))
def test_packing_keeps_every_document(case):
    lengths = [1 + (case * 13 + 7 * k) % {capacity} for k in range({docs})]
    rows = pack_rows(lengths, {capacity})
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= {capacity} for row in rows)
"""


SUITES = {
    "hand-rolled conftest.py": (TIMING_HOOK + HAND_ROLLED_CONFTEST, HAND_ROLLED_HELPERS, True),
    "ferrofix fixtures": (TIMING_HOOK + FERROFIX_CONFTEST, FERROFIX_HELPERS, False),
}


def write_suite(root: Path, conftest: str, helpers: str, size: dict[str, int]) -> None:
    root.mkdir()
    (root / "conftest.py").write_text(conftest)
    (root / "helpers.py").write_text(helpers)
    (root / "test_steps.py").write_text(TESTS.format(cases=CASES, **size))


def run_suite(root: Path, without_plugin: bool, workers: int) -> tuple[float, float, int]:
    """Whole-run seconds, test-loop seconds and the number of tests of one pytest process."""
    timing = root / "timing.json"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root)]
    if without_plugin:
        args += ["-p", "no:ferrofix"]
    if workers:
        args += ["-n", str(workers)]
    env = {**os.environ, "SUITE_TIMING_FILE": str(timing), "PYTHONPATH": str(root)}
    # Python's default: bytecode, pytest's assertion-rewritten modules included, is cached.
    # With PYTHONDONTWRITEBYTECODE=1 every run rewrites and compiles every plugin's modules.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=root, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{root.name} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    loop = json.loads(timing.read_text())
    return wall, loop["seconds"], loop["tests"]


# (inputs, pytest-xdist workers) of each pair of rows; 0 workers: one process.
RUNS = [("tiny inputs", 0), ("tiny inputs", 2), ("small-batch inputs", 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for inputs, workers in RUNS:
            roots = {}
            for name, (conftest, helpers, without_plugin) in SUITES.items():
                root = Path(tmp) / f"suite{len(list(Path(tmp).iterdir()))}"
                write_suite(root, conftest, helpers, SIZES[inputs])
                roots[name] = (root, without_plugin)
                run_suite(root, without_plugin, workers)  # warm the file and bytecode caches
            samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in roots}
            for _ in range(args.rounds):
                for name, (root, without_plugin) in roots.items():
                    samples[name].append(run_suite(root, without_plugin, workers))
            base = samples["hand-rolled conftest.py"]
            for name, runs in samples.items():
                # Ratios pair the two suites' runs of the same round: drift over the
                # minutes of a run then cancels instead of landing on one side.
                wall_ratio = statistics.median(b[0] / r[0] for b, r in zip(base, runs, strict=True))
                loop_ratio = statistics.median(b[1] / r[1] for b, r in zip(base, runs, strict=True))
                loop = statistics.median(r[1] for r in runs)
                tests = runs[0][2]
                rows.append(
                    [
                        inputs,
                        "one process" if workers == 0 else f"-n {workers} (pytest-xdist)",
                        name,
                        str(tests),
                        f"{statistics.median(r[0] for r in runs):.2f}",
                        f"{wall_ratio:.2f}x",
                        f"{loop * 1e3:.0f}",
                        f"{loop / tests * 1e6:.0f}",
                        f"{loop_ratio:.2f}x",
                    ]
                )
    notes = (
        f"Medians of {args.rounds} fresh `pytest` processes per suite, the two suites "
        "alternating (`python benchmarks/bench_suite.py`). Both suites run the same test "
        "file; the hand-rolled one gets its fixtures and helpers from its own conftest.py "
        "and runs with `-p no:ferrofix`, the other gets ferrofix's with the plugin loaded. "
        "Whole run: the process's wall time (interpreter and torch import, collection, "
        "tests). Test loop: first test's setup to last test's teardown, as pytest's "
        "`pytest_runtestloop` sees it (under xdist, the controller's view: workers start, "
        "run and report). Ratios: the median over rounds of hand-rolled time / ferrofix time "
        "in the same round (> 1: ferrofix faster)."
    )
    write_table(
        "suite",
        "One suite: hand-rolled conftest.py fixtures vs ferrofix's",
        [
            "inputs",
            "run",
            "fixtures",
            "tests",
            "whole run (s)",
            "hand-rolled / this",
            "test loop (ms)",
            "per test (us)",
            "hand-rolled / this",
        ],
        rows,
        notes,
    )


if __name__ == "__main__":
    main()
