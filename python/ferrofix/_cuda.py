"""The CUDA side of the loss: NVRTC preloading and launching on torch's tensors and stream.

Nothing here is imported by the plugin; it loads when a CUDA tensor reaches
:func:`ferrofix.loss.causal_lm_loss` or ``python -m ferrofix doctor`` runs.

cudarc (in the extension) dlopens NVRTC by bare library name only, so the copy pip
installs with torch (``nvidia-cuda-nvrtc*``) is invisible to it unless something loaded it
first: :func:`preload_nvrtc` does that with ``RTLD_GLOBAL`` when torch has not.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import sys
from typing import Any

from ferrofix import _native, _torch
from ferrofix._arrays import as_array, c_contiguous
from ferrofix.errors import ConfigError, CudaUnavailableError, DtypeError

_CUDA_DTYPES = ("float32", "bfloat16", "float16")


def _nvrtc_loaded() -> bool:
    """Whether some libnvrtc is already mapped into this process (Linux)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libnvrtc.so" in line for line in maps)
    except OSError:
        return False


def nvrtc_candidates() -> list[str]:
    """NVRTC libraries installed by pip's ``nvidia-*`` wheels, newest CUDA first."""
    found: list[str] = []
    for entry in sys.path:
        for pattern in ("nvidia/cu*/lib/libnvrtc.so.*", "nvidia/cuda_nvrtc/lib/libnvrtc.so.*"):
            found += glob.glob(os.path.join(entry or ".", pattern))
    # Only the runtime compiler itself; its builtins library is found by NVRTC.
    libraries = [path for path in found if "builtins" not in os.path.basename(path)]
    return sorted(set(libraries), key=lambda path: os.path.basename(path), reverse=True)


@functools.cache
def preload_nvrtc() -> str | None:
    """Make NVRTC visible to the extension; returns the path loaded, or None.

    Does nothing when a libnvrtc is already loaded (torch's, or one on the library path
    that the extension will find by itself).
    """
    if _nvrtc_loaded():
        return None
    for path in nvrtc_candidates():
        try:
            ctypes.CDLL(path, mode=os.RTLD_GLOBAL)
        except OSError:
            continue
        return path
    return None


def core() -> Any:
    """The extension, with NVRTC preloaded for it."""
    preload_nvrtc()
    return _native.core()


def cuda_available() -> bool:
    """Whether ferrofix's CUDA kernels can run here: a driver with a device, and NVRTC.

    Never raises and never imports torch; probes the libraries with dlopen only.
    """
    native = core()
    return bool(native.cuda_available() and native.nvrtc_available())


def _device_index(device: Any) -> int:
    """The ordinal of a CUDA ``torch.device`` (a bare ``cuda`` means the current one)."""
    if device.index is not None:
        return int(device.index)
    return int(_torch.loaded_torch().cuda.current_device())


def _labels_on(labels: Any, device: Any) -> Any:
    """Labels as a contiguous int32/int64 tensor on ``device``."""
    torch = _torch.loaded_torch()
    if not _torch.is_tensor(labels):
        import numpy as np

        array = as_array("causal_lm_loss labels", labels)
        if array.dtype.kind not in "iu":
            raise DtypeError(
                f"causal_lm_loss labels: expected an integer array, got {array.dtype.name}"
            )
        labels = torch.from_numpy(c_contiguous(array.astype(np.int64, copy=False)))
    elif labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DtypeError(
            f"causal_lm_loss labels: expected an integer tensor, got {_torch.dtype_name(labels)}"
        )
    if labels.dtype not in (torch.int32, torch.int64):
        labels = labels.to(torch.int64)
    # The kernels read raw memory, which under torch's neg bit holds the other sign.
    return labels.to(device, non_blocking=True).contiguous().resolve_neg()


def _bad_label_error(labels: Any, position: int, vocab: int, ignore_index: int) -> ConfigError:
    """The CPU backend's message for the first label outside [0, V)."""
    value = int(labels.reshape(-1)[position])
    if labels.dim() == 2:
        where = f"({position // labels.shape[1]}, {position % labels.shape[1]})"
    else:
        where = f"({position},)"
    return ConfigError(
        f"labels: value {value} at position {where} is outside [0, {vocab}) and is not "
        f"ignore_index ({ignore_index})"
    )


def causal_lm_loss(
    logits: Any,
    labels: Any,
    options: Any,
    *,
    with_grad: bool,
    in_place: bool = False,
    splits: int | None = None,
    cluster: int | None = None,
) -> tuple[Any, Any, Any]:
    """Run the kernels on a CUDA tensor; returns ``(loss, lse, grad or None)``.

    ``loss`` is a 0-d float32 tensor (``mean``/``sum``) or the per-row float32 losses
    (``none``, flat); ``lse`` is per row, flat. Every buffer is allocated by torch on the
    logits' device and the kernels run on its current stream. Only the label check is
    waited for (it runs first and is read back): the loss kernels are still running when
    this returns.
    """
    torch = _torch.loaded_torch()
    name = _torch.dtype_name(logits)
    if name not in _CUDA_DTYPES:
        raise DtypeError(
            f"causal_lm_loss on CUDA does not support dtype {name}; "
            f"supported: {', '.join(_CUDA_DTYPES)}"
        )
    native = core()
    if not native.cuda_available():
        raise CudaUnavailableError(
            f"CUDA is not available: ferrofix found no CUDA driver or device for {logits.device}"
        )
    device = logits.device
    index = _device_index(device)
    source = logits.detach()
    if in_place:
        _torch.check_in_place(logits)
    # The kernels read raw memory, which under torch's neg bit holds the other sign.
    source = source.contiguous().resolve_neg()
    label_tensor = _labels_on(labels, device)
    vocab = source.shape[-1] if source.dim() else 0
    rows = source.numel() // vocab if vocab else 0
    # `splits` forces the vocabulary-split path, `cluster` the fused (0) or on-chip kernel
    # (tests use them on small inputs).
    planned_splits, threads, cluster, row_blocks, workspace_bytes = native.cuda_loss_plan(
        index, rows, max(vocab, 1), name, splits, cluster
    )
    # One allocation for the float outputs (each allocation costs microseconds of host
    # time, which small calls feel): row losses, row lse, then the reduced loss.
    outputs = torch.empty(2 * rows + 1, dtype=torch.float32, device=device)
    row_loss, lse, result = outputs[:rows], outputs[rows : 2 * rows], outputs[2 * rows]
    counters = torch.empty(2, dtype=torch.int64, device=device)
    workspace = (
        torch.empty(workspace_bytes, dtype=torch.uint8, device=device) if workspace_bytes else None
    )
    grad = (source if in_place else torch.empty_like(source)) if with_grad else None
    stream = torch.cuda.current_stream(device).cuda_stream
    kwargs = options.kwargs
    bad = native.cuda_causal_lm_loss(
        index,
        stream,
        name,
        list(source.shape),
        list(label_tensor.shape),
        logits=source.data_ptr(),
        grad=0 if grad is None else grad.data_ptr(),
        labels=label_tensor.data_ptr(),
        labels_i64=label_tensor.dtype == torch.int64,
        row_loss=row_loss.data_ptr(),
        lse=lse.data_ptr(),
        counters=counters.data_ptr(),
        result=result.data_ptr(),
        workspace=0 if workspace is None else workspace.data_ptr(),
        splits=planned_splits,
        threads=threads,
        cluster=cluster,
        row_blocks=row_blocks,
        **kwargs,
    )
    if bad is not None:
        raise _bad_label_error(label_tensor, bad, vocab, kwargs["ignore_index"])
    loss = row_loss if kwargs["reduction"] == "none" else result
    return loss, lse, grad


def scale_gradient(grad: Any, grad_output: Any) -> Any:
    """``grad *= grad_output`` in place for a 0-d CUDA ``grad_output``, read on the device.

    backward's ``grad_output`` is usually 1 (``loss.backward()``): reading it on the host
    would wait for the whole step; the kernel skips the pass when it is 1.
    """
    torch = _torch.loaded_torch()
    scale = grad_output.detach().to(device=grad.device, dtype=torch.float32).contiguous()
    index = _device_index(grad.device)
    core().cuda_scale_gradient(
        index,
        torch.cuda.current_stream(grad.device).cuda_stream,
        _torch.dtype_name(grad),
        grad.data_ptr(),
        grad.numel(),
        scale.data_ptr(),
    )
    return grad


def _compile_line(native: Any, file: str, functions: list[str], arch: str) -> str:
    try:
        image, _ = native.cuda_compile(file, arch)
    except Exception as error:
        return f"kernels: {file} for {arch} FAILED: {error}"
    return f"kernels: {file} for {arch}: {len(functions)} functions, {len(image)} bytes"


def report() -> list[str]:
    """``python -m ferrofix doctor``'s CUDA lines: driver, devices, NVRTC, every kernel."""
    preloaded = preload_nvrtc()
    native = _native.core()
    lines = []
    try:
        major, minor = native.cuda_driver_version()
        lines.append(f"CUDA driver: {major}.{minor}")
        devices = native.cuda_devices()
    except Exception as error:
        lines.append(f"CUDA driver: not available ({error})")
        devices = []
    for index, name, (cc_major, cc_minor), memory, sms, l2 in devices:
        lines.append(
            f"CUDA device {index}: {name}, sm_{cc_major}{cc_minor}, "
            f"{memory / 2**30:.1f} GiB, {sms} SMs, {l2 / 2**20:.0f} MiB L2"
        )
    try:
        major, minor = native.nvrtc_version()
        where = f" (preloaded {preloaded})" if preloaded else ""
        lines.append(f"NVRTC: {major}.{minor}{where}")
    except Exception as error:
        lines.append(f"NVRTC: not available ({error})")
        return lines
    # Machine code for each device present; without one, PTX for the oldest and newest
    # architectures CI checks.
    archs = sorted({f"sm_{cc[0]}{cc[1]}" for _, _, cc, *_ in devices}) or [
        "compute_80",
        "compute_90",
    ]
    for file, functions in native.cuda_kernel_files():
        lines += [_compile_line(native, file, functions, arch) for arch in archs]
    return lines
