"""Causal-LM cross-entropy: ferrofix vs torch CPU vs a numpy three-pass reference.

Same logits and labels for every contender, one process. For each case:
- forward: the mean loss;
- forward+gradient: ferrofix through torch autograd (`loss.backward()`), once in the steady
  state of a training loop (the previous step's gradient buffer, released by
  `leaf.grad = None`, is reused from ferrofix's pool) and once with a fresh buffer per call
  (the pool emptied before each call, so the kernel faults in new pages as for torch's
  gradient), ferrofix writing the gradient over the logits (`in_place=True`), torch
  `F.cross_entropy` forward+backward, and numpy (max, exp-sum, then softmax - onehot);
- peak extra memory: the process's peak RSS during one call minus its RSS before, minus the
  gradient itself (Linux `VmHWM`, reset through /proc/self/clear_refs).
Shift is off (rows are tokens) so every contender does exactly the same work.
Run: python benchmarks/bench_loss.py [--repeats R]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_ms, write_table
from ferrofix import loss

CASES = [
    (2048, 32000, "float32"),
    (2048, 32000, "bfloat16"),
    (1024, 128256, "float32"),
    (64, 1000, "float32"),
]


def rss_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def peak_extra_mib(fn: Callable[[], object], output_bytes: int) -> float:
    """Peak RSS growth during one call, minus the bytes the call must return."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return float("nan")
    before = rss_kib("VmRSS")
    result = fn()
    extra = (rss_kib("VmHWM") - before) * 1024 - output_bytes
    del result
    return max(extra, 0) / 2**20


def timed(fn: Callable[[], object], repeats: int, setup: Callable[[], None] | None = None):
    if setup:
        setup()
    fn()  # warm up
    samples = []
    for _ in range(repeats):
        if setup:
            setup()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return median_ms(samples)


def numpy_reference(x: np.ndarray, y: np.ndarray, with_grad: bool):
    rows = np.arange(len(y))
    row_max = x.max(axis=1, keepdims=True)
    exps = np.exp(x - row_max)
    sums = exps.sum(axis=1, keepdims=True)
    value = float(np.mean(row_max[:, 0] + np.log(sums[:, 0]) - x[rows, y]))
    if not with_grad:
        return value
    exps /= sums
    exps[rows, y] -= 1.0
    exps /= len(y)
    return value, exps


def run_case(n: int, vocab: int, dtype: str, repeats: int) -> tuple[list[str], list[str]]:
    generator = torch.Generator().manual_seed(0)
    torch_dtype = getattr(torch, dtype)
    logits = (torch.randn(n, vocab, generator=generator) * 2).to(torch_dtype)
    labels = torch.randint(0, vocab, (n,), generator=generator)
    logits_np = logits.float().numpy() if dtype == "float32" else None
    labels_np = labels.numpy()
    grad_bytes = logits.numel() * logits.element_size()
    leaf = logits.clone().requires_grad_()
    buffer = logits.clone()

    def ours_forward():
        return loss.causal_lm_loss(logits, labels, shift=False)

    def ours_backward():
        leaf.grad = None
        loss.causal_lm_loss(leaf, labels, shift=False).backward()
        return leaf.grad

    def refill():
        buffer.copy_(logits)

    def ours_in_place():
        return loss.causal_lm_loss_and_grad(buffer, labels, shift=False, in_place=True)

    def torch_forward():
        return F.cross_entropy(logits, labels)

    def torch_backward():
        leaf.grad = None
        F.cross_entropy(leaf, labels).backward()
        return leaf.grad

    def empty_pool():
        leaf.grad = None
        loss.release_gradient_buffers()

    timings = {
        "ours_fwd": timed(ours_forward, repeats),
        "ours_grad": timed(ours_backward, repeats),
        "ours_grad_fresh": timed(ours_backward, repeats, setup=empty_pool),
        "ours_inplace": timed(ours_in_place, repeats, setup=refill),
        "torch_fwd": timed(torch_forward, repeats),
        "torch_grad": timed(torch_backward, repeats),
    }
    # Each measurement starts with no gradient alive and the pool empty, so the gradient's
    # pages count as new memory for ferrofix as they do for torch.
    memory = {}
    for name, fn in (("ours", ours_backward), ("torch", torch_backward)):
        empty_pool()
        memory[name] = peak_extra_mib(fn, grad_bytes)
    if logits_np is not None:
        # The lowest-overhead public path: numpy in, (loss, gradient) out, no torch.
        timings["ours_numpy_grad"] = timed(
            lambda: loss.causal_lm_loss_and_grad(logits_np, labels_np, shift=False), repeats
        )
        timings["numpy_fwd"] = timed(lambda: numpy_reference(logits_np, labels_np, False), repeats)
        timings["numpy_grad"] = timed(lambda: numpy_reference(logits_np, labels_np, True), repeats)
        memory["numpy"] = peak_extra_mib(
            lambda: numpy_reference(logits_np, labels_np, True), grad_bytes
        )
    logits_mib = grad_bytes / 2**20

    def ms(key: str) -> str:
        value = timings.get(key)
        if value is None:
            return "n/a"
        return f"{value * 1e3:.0f} us" if value < 1 else f"{value:.1f}"

    def ratio(anchor: str, ours: str) -> str:
        return f"{timings[anchor] / timings[ours]:.1f}x" if anchor in timings else "n/a"

    def mib(key: str) -> str:
        value = memory.get(key)
        if value is None:
            return "n/a"
        return f"{value:.2f} ({100 * value / logits_mib:.2f}%)"

    label = f"N={n}, V={vocab}, {dtype}"
    speed = [
        label,
        ms("ours_fwd"),
        ms("torch_fwd"),
        ms("numpy_fwd"),
        ratio("torch_fwd", "ours_fwd"),
        ms("ours_grad"),
        ms("ours_grad_fresh"),
        ms("ours_inplace"),
        ms("ours_numpy_grad"),
        ms("torch_grad"),
        ms("numpy_grad"),
        ratio("torch_grad", "ours_grad"),
        ratio("torch_grad", "ours_grad_fresh"),
        ratio("torch_grad", "ours_inplace"),
        ratio("numpy_grad", "ours_grad"),
    ]
    mem = [label, f"{logits_mib:.1f}", mib("ours"), mib("torch"), mib("numpy")]
    return speed, mem


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    speed_rows, memory_rows = [], []
    for n, vocab, dtype in CASES:
        repeats = args.repeats * (50 if n * vocab < 1e6 else 1)
        speed, mem = run_case(n, vocab, dtype, repeats)
        speed_rows.append(speed)
        memory_rows.append(mem)
    header = [
        "case",
        "ferrofix fwd (ms)",
        "torch fwd (ms)",
        "numpy fwd (ms)",
        "fwd vs torch",
        "ferrofix fwd+grad (ms)",
        "ferrofix fwd+grad, fresh buffer (ms)",
        "ferrofix in-place (ms)",
        "ferrofix fwd+grad, numpy in (ms)",
        "torch fwd+bwd (ms)",
        "numpy fwd+grad (ms)",
        "fwd+grad vs torch",
        "fresh buffer vs torch",
        "in-place vs torch",
        "fwd+grad vs numpy",
    ]
    memory_header = [
        "case",
        "logits (MiB)",
        "ferrofix extra (MiB, % of logits)",
        "torch extra",
        "numpy extra",
    ]
    notes = (
        f"Medians of {args.repeats} runs ({50 * args.repeats} for the small case) after a "
        "warm-up, all in one process on the same inputs (`python benchmarks/bench_loss.py`); "
        "torch uses its default intra-op threads, ferrofix its pool (all cores). Ratios = "
        "anchor time / ferrofix time. ferrofix fwd+grad runs through torch autograd "
        "(`loss.backward()`) in a training loop's steady state: the previous step's gradient, "
        "released by `leaf.grad = None`, is reused from ferrofix's buffer pool; 'fresh "
        "buffer' empties the pool before each call, so the gradient lands in new pages as "
        "torch's does; in-place writes it over the logits; 'numpy in' calls "
        "`causal_lm_loss_and_grad` on numpy arrays (no torch). Extra memory = peak RSS growth "
        "during one forward+gradient call minus the gradient itself."
    )
    write_table(
        "loss",
        "Causal-LM cross-entropy on CPU: ferrofix vs torch vs numpy",
        header,
        speed_rows,
        notes,
    )
    memory_notes = "Peak extra memory of one forward+gradient call (Linux VmHWM)."
    memory_path = write_table(
        "loss_memory",
        "Causal-LM cross-entropy on CPU: peak extra memory",
        memory_header,
        memory_rows,
        memory_notes,
    )
    del memory_path


if __name__ == "__main__":
    main()
