"""Causal-LM cross-entropy on CUDA: ferrofix vs torch F.cross_entropy vs Liger-Kernel.

Same bf16 logits and labels for every contender, one process, one GPU. For each case
(N tokens, vocabulary V, shift off so every contender does the same work):
- time: forward + gradient, the median over repeats of CUDA-event timings, twice: with the
  host ahead of the GPU (a spin kernel queued before the start event: the GPU's time) and
  from an idle GPU (the host's per-call work included). ferrofix through
  torch autograd (the gradient is written in the forward pass), ferrofix writing the
  gradient over the logits (``in_place=True``), torch ``F.cross_entropy`` forward+backward
  (bf16 logits, as a training step would call it) and Liger's ``LigerCrossEntropyLoss``
  (skipped with a note when ``liger_kernel`` is not importable);
- achieved bandwidth: the two-pass floor's bytes (read the logits once, write the gradient
  once: 2·N·V·2 bytes) divided by the time, and the fraction of the GPU's HBM bandwidth;
- peak memory beyond the gradient: ``torch.cuda.max_memory_allocated`` during one call
  minus the memory before it, minus the gradient's bytes;
- a device-to-device copy of the logits into another buffer: the same bytes as the
  two-pass floor, moved as fast as this GPU moves them.
Liger writes its gradient over the logits, like ferrofix's in-place mode.
Without a CUDA device nothing is measured and the results file is left as it is.
Run: python benchmarks/bench_loss_cuda.py [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_table
from ferrofix import loss

# The two sizes, and a test-suite-sized call where per-call latency dominates.
CASES = [(8192, 32000), (8192, 128256), (64, 1000)]
# Peak HBM bandwidth (bytes/s) by device name; the goal's floor uses it.
BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}


def bandwidth_of(name: str) -> float | None:
    return next((value for key, value in BANDWIDTH.items() if key in name), None)


# A spin of about 2 ms at H100/H200 clocks queued before the start event: long enough for
# the host to queue a whole call behind it.
HOST_AHEAD_CYCLES = 4_000_000


def cuda_ms(
    fn: Callable[[], object],
    repeats: int,
    setup: Callable[[], None] | None,
    host_ahead: bool = False,
) -> float:
    """Median milliseconds between CUDA events around ``fn`` (after two warm-ups).

    With ``host_ahead``, the GPU spins before the start event while the host queues the
    call, so the time is the GPU's alone, as in a training step whose host runs ahead;
    without, the GPU starts idle and waits for the host's per-call work too.
    """
    for _ in range(2):
        if setup:
            setup()
        fn()
    samples = []
    for _ in range(repeats):
        if setup:
            setup()
        if host_ahead:
            torch.cuda._sleep(HOST_AHEAD_CYCLES)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return statistics.median(samples)


def peak_extra_mib(fn: Callable[[], object], grad_bytes: int) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = fn()
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before - grad_bytes
    del result
    return max(extra, 0) / 2**20


def liger_loss() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    try:
        from liger_kernel.transformers import LigerCrossEntropyLoss
    except Exception:
        return None
    return LigerCrossEntropyLoss()


def _liger_version() -> str:
    from importlib.metadata import version

    return f"liger-kernel {version('liger-kernel')}"


def run_case(n: int, vocab: int, repeats: int, liger) -> list[list[str]]:
    generator = torch.Generator(device="cuda").manual_seed(0)
    logits = (torch.randn(n, vocab, generator=generator, device="cuda") * 2).to(torch.bfloat16)
    labels = torch.randint(0, vocab, (n,), generator=generator, device="cuda")
    grad_bytes = logits.numel() * logits.element_size()
    leaf = logits.clone().requires_grad_()
    buffer = logits.clone()

    def clear():
        leaf.grad = None

    def refill():
        buffer.copy_(logits)

    def ferrofix_autograd():
        loss.causal_lm_loss(leaf, labels, shift=False).backward()
        return leaf.grad

    def ferrofix_in_place():
        return loss.causal_lm_loss_and_grad(buffer, labels, shift=False, in_place=True)

    def torch_step():
        F.cross_entropy(leaf, labels).backward()
        return leaf.grad

    copy_target = torch.empty_like(logits)

    def copy_floor():
        return copy_target.copy_(logits)

    contenders = {
        "device copy (floor)": (copy_floor, None),
        "ferrofix (autograd)": (ferrofix_autograd, clear),
        "ferrofix (in place)": (ferrofix_in_place, refill),
        "torch F.cross_entropy": (torch_step, clear),
    }
    if liger is not None:

        def liger_step():
            liger(leaf, labels).backward()
            return leaf.grad

        contenders["Liger CrossEntropy"] = (liger_step, clear)

    idle = {name: cuda_ms(fn, repeats, setup) for name, (fn, setup) in contenders.items()}
    times = {
        name: cuda_ms(fn, repeats, setup, host_ahead=True)
        for name, (fn, setup) in contenders.items()
    }
    memory = {}
    for name, (fn, setup) in contenders.items():
        if setup:
            setup()
        # In place writes over the logits, the copy into a buffer it owns: neither
        # allocates a gradient.
        in_place = "in place" in name or "copy" in name
        memory[name] = peak_extra_mib(fn, 0 if in_place else grad_bytes)
    floor_bytes = 2 * n * vocab * logits.element_size()
    peak = bandwidth_of(torch.cuda.get_device_name())
    ours = times["ferrofix (autograd)"]
    rows = []
    for name, ms in times.items():
        achieved = floor_bytes / (ms * 1e-3)
        share = f"{100 * achieved / peak:.0f}%" if peak else "n/a"
        rows.append(
            [
                f"N={n}, V={vocab}",
                name,
                f"{ms:.3f}",
                f"{idle[name]:.3f}",
                f"{achieved / 1e12:.2f}",
                share,
                f"{ms / ours:.2f}x",
                f"{memory[name]:.1f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_loss_cuda: no CUDA device; nothing measured, results left unchanged")
        return
    liger = liger_loss()
    rows = []
    for n, vocab in CASES:
        rows += run_case(n, vocab, args.repeats, liger)
    name = torch.cuda.get_device_name()
    peak = bandwidth_of(name)
    floor = (
        ", ".join(f"V={v}: {2 * n * v * 2 / peak * 1e3:.2f} ms" for n, v in CASES)
        if peak
        else "unknown bandwidth"
    )
    notes = "\n".join(
        [
            f"GPU: {name}, torch {torch.__version__}. bf16 logits, forward + gradient, median "
            f"of {args.repeats} CUDA-event timings; shift off.",
            "'GPU time': the host queues the call while the GPU is still busy (as in a "
            "training step), so the time is the GPU's; bytes/s, the HBM share and the ratios "
            "use it. 'from idle': the GPU waits for the host's per-call work (Python, "
            "autograd, launches) too.",
            f"Two-pass HBM floor (2·N·V·2 bytes at {peak and peak / 1e12} TB/s): {floor}; "
            "the goal is >= 85% of it.",
            "'time vs ferrofix' is each contender's time over ferrofix's autograd time "
            "(above 1 means ferrofix is faster).",
            "Liger-Kernel: "
            + (f"{_liger_version()}, measured" if liger else "not installed, not measured")
            + ". Liger writes the gradient over its input, as ferrofix (in place) does.",
        ]
    )
    write_table(
        "loss_cuda",
        "Causal-LM cross-entropy on CUDA: forward + gradient",
        [
            "case",
            "contender",
            "GPU time (ms)",
            "from idle (ms)",
            "floor bytes/s (TB/s)",
            "of HBM peak",
            "time vs ferrofix",
            "peak extra (MiB)",
        ],
        rows,
        notes,
    )


if __name__ == "__main__":
    main()
