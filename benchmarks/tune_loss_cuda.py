"""Sweep the CUDA loss's launch plan: which kernel, block size and grid to use.

For N=8192 bf16 rows with V in {32000, 128256}, times the kernels alone (buffers allocated
once, the gradient into its own buffer) for the fused kernel (cluster 0) and the on-chip
kernel with each cluster size that fits, every block size and a few grids, next to a
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
# Block sizes per kernel: the on-chip kernel takes at most 256 threads.
THREADS = {0: [256, 512, 1024], "onchip": [128, 256]}
# Grid sizes as multiples of the SM count (in blocks); 0 launches one block (or cluster)
# per row.
ROW_BLOCKS_PER_SM = [1, 2, 4, 0]
CLUSTERS = {32000: [0, 1, 2], 128256: [0, 2, 4, 8]}


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

    def run(cluster: int, threads: int, row_blocks: int) -> None:
        native.cuda_causal_lm_loss(
            device, stream, "bfloat16", [n, vocab], [n], shift=False, ignore_index=-100,
            reduction="mean", z_loss_scale=0.0, softcap=None, label_smoothing=0.0,
            num_items_in_batch=None, logits=logits.data_ptr(), grad=grad.data_ptr(),
            labels=labels.data_ptr(), labels_i64=True, row_loss=row_loss.data_ptr(),
            lse=lse.data_ptr(), counters=counters.data_ptr(), result=result.data_ptr(),
            workspace=0, splits=1, threads=threads, cluster=cluster, row_blocks=row_blocks,
        )  # fmt: skip

    copy_ms = cuda_ms(lambda: grad.copy_(logits), repeats, None)
    floor_bytes = 2 * logits.numel() * logits.element_size()
    print(
        f"\nN={n}, V={vocab}, bf16, {sms} SMs; "
        f"chosen (splits, threads, cluster, row_blocks, workspace) = {chosen}"
    )
    print(f"copy of the same bytes: {copy_ms:.3f} ms = {floor_bytes / copy_ms / 1e9:.2f} TB/s")
    print("cluster | threads | row_blocks | ms | TB/s (floor bytes) | of copy time")
    configs = [
        (cluster, threads, per_sm * sms // max(cluster, 1))
        for cluster in CLUSTERS[vocab]
        for threads in THREADS[0 if cluster == 0 else "onchip"]
        for per_sm in ROW_BLOCKS_PER_SM
    ]
    if tuple(chosen[1:4]) not in [(t, c, r) for c, t, r in configs]:
        configs.append((chosen[2], chosen[1], chosen[3]))
    reference: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    for cluster, threads, row_blocks in configs:
        try:
            ms = cuda_ms(lambda c=cluster, t=threads, r=row_blocks: run(c, t, r), repeats, None)
        except Exception as error:  # a plan the device cannot launch
            print(f" {cluster:7d} | {threads:7d} | {row_blocks or 'rows':>10} | failed: {error}")
            continue
        run(cluster, threads, row_blocks)
        # The grid must not change the bits; the kernel and block size may.
        key = (cluster, threads)
        if key not in reference:
            reference[key] = (row_loss.clone(), grad.clone())
        elif not (
            torch.equal(row_loss, reference[key][0]) and torch.equal(grad, reference[key][1])
        ):
            print(f"  !! cluster={cluster} threads={threads} row_blocks={row_blocks} changed bits")
        mark = "*" if (threads, cluster, row_blocks) == tuple(chosen[1:4]) else " "
        print(
            f"{mark}{cluster:7d} | {threads:7d} | {row_blocks or 'rows':>10} | {ms:.3f} | "
            f"{floor_bytes / ms / 1e9:.2f} | {ms / copy_ms:.2f}"
        )


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
