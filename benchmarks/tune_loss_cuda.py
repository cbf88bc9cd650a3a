"""Sweep the CUDA loss's launch plan: which block size and grid the fused kernel should use.

For N=8192 bf16 rows with V in {32000, 128256}, times the kernels alone (buffers allocated
once, the gradient into its own buffer) for every (threads, row_blocks) pair, next to a
device-to-device copy of the same bytes (read the logits once, write the gradient once:
the two-pass floor as this GPU actually moves it). Prints one table per case, the plan
ferrofix would choose marked with '*'. Needs a CUDA device.
Run: python benchmarks/tune_loss_cuda.py [--repeats R]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loss_cuda import cuda_ms
from ferrofix import _cuda

CASES = [(8192, 32000), (8192, 128256)]
THREADS = [256, 512, 1024]
# Grid sizes as multiples of the SM count; 0 launches one block per row.
ROW_BLOCKS_PER_SM = [1, 2, 3, 4, 0]


def sweep(n: int, vocab: int, repeats: int) -> None:
    native = _cuda.core()
    device = torch.cuda.current_device()
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    generator = torch.Generator(device="cuda").manual_seed(0)
    logits = (torch.randn(n, vocab, generator=generator, device="cuda") * 2).to(torch.bfloat16)
    labels = torch.randint(0, vocab, (n,), generator=generator, device="cuda")
    grad = torch.empty_like(logits)
    floats = {"dtype": torch.float32, "device": "cuda"}
    row_loss, lse, result = (
        torch.empty(n, **floats),
        torch.empty(n, **floats),
        torch.empty(1, **floats),
    )
    counters = torch.empty(2, dtype=torch.int64, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    chosen = native.cuda_loss_plan(device, n, vocab, "bfloat16")

    def run(threads: int, row_blocks: int) -> None:
        native.cuda_causal_lm_loss(
            device, stream, "bfloat16", [n, vocab], [n], shift=False, ignore_index=-100,
            reduction="mean", z_loss_scale=0.0, softcap=None, label_smoothing=0.0,
            num_items_in_batch=None, logits=logits.data_ptr(), grad=grad.data_ptr(),
            labels=labels.data_ptr(), labels_i64=True, row_loss=row_loss.data_ptr(),
            lse=lse.data_ptr(), counters=counters.data_ptr(), result=result.data_ptr(),
            workspace=0, splits=1, threads=threads, row_blocks=row_blocks,
        )  # fmt: skip

    copy_ms = cuda_ms(lambda: grad.copy_(logits), repeats, None)
    floor_bytes = 2 * logits.numel() * logits.element_size()
    print(
        f"\nN={n}, V={vocab}, bf16, {sms} SMs; "
        f"chosen (splits, threads, row_blocks, workspace) = {chosen}"
    )
    print(f"copy of the same bytes: {copy_ms:.3f} ms = {floor_bytes / copy_ms / 1e9:.2f} TB/s")
    print("threads | row_blocks | ms | TB/s (floor bytes) | of copy time")
    for threads in THREADS:
        reference = None  # the grid must not change the bits; the block size may
        for per_sm in ROW_BLOCKS_PER_SM:
            row_blocks = per_sm * sms
            ms = cuda_ms(lambda t=threads, r=row_blocks: run(t, r), repeats, None)
            if reference is None:
                run(threads, row_blocks)
                reference = (row_loss.clone(), grad.clone())
            else:
                run(threads, row_blocks)
                same = torch.equal(row_loss, reference[0]) and torch.equal(grad, reference[1])
                if not same:
                    print(f"  !! threads={threads} row_blocks={row_blocks} changed the result")
            mark = "*" if (threads, row_blocks) == (chosen[1], chosen[2]) else " "
            print(
                f"{mark}{threads:7d} | {row_blocks or 'rows':>10} | {ms:.3f} | "
                f"{floor_bytes / ms / 1e9:.2f} | {ms / copy_ms:.2f}"
            )
    if chosen[2] not in [per_sm * sms for per_sm in ROW_BLOCKS_PER_SM]:
        ms = cuda_ms(lambda: run(chosen[1], chosen[2]), repeats, None)
        print(f"*{chosen[1]:7d} | {chosen[2]:>10} | {ms:.3f} | {floor_bytes / ms / 1e9:.2f} | "
              f"{ms / copy_ms:.2f}")  # fmt: skip


def profile_autograd(n: int, vocab: int) -> None:
    """Where an autograd step's time goes beyond the kernels: torch's profiler table."""
    from ferrofix import loss

    generator = torch.Generator(device="cuda").manual_seed(0)
    logits = (torch.randn(n, vocab, generator=generator, device="cuda") * 2).to(torch.bfloat16)
    labels = torch.randint(0, vocab, (n,), generator=generator, device="cuda")
    leaf = logits.requires_grad_()

    def step() -> None:
        leaf.grad = None
        loss.causal_lm_loss(leaf, labels, shift=False).backward()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    print(f"\nautograd step, N={n}, V={vocab}, 5 steps:")
    print(
        prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=40)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="also profile an autograd step")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("tune_loss_cuda: no CUDA device; nothing measured")
        return
    for n, vocab in CASES:
        sweep(n, vocab, args.repeats)
    if args.profile:
        profile_autograd(*CASES[-1])


if __name__ == "__main__":
    main()
