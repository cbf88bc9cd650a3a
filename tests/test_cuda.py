"""The CUDA backend where no GPU is needed: NVRTC compiles every kernel cleanly, probes
never crash, and a CPU-only machine gets clear errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from ferrofix import _cuda, _native
from ferrofix.errors import ConfigError, CudaUnavailableError, DtypeError


def nvrtc_or_skip():
    native = _cuda.core()
    if not native.nvrtc_available():
        pytest.skip("NVRTC cannot be loaded here (install torch, which brings libnvrtc)")
    return native


KERNEL_FILES = _native.core().cuda_kernel_files()


@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
@pytest.mark.parametrize(("file", "functions"), KERNEL_FILES, ids=[f for f, _ in KERNEL_FILES])
def test_every_kernel_compiles_to_ptx_without_errors_or_warnings(file, functions, arch) -> None:
    native = nvrtc_or_skip()
    ptx, log = native.cuda_compile(file, arch)
    assert log.strip() == "", log  # warnings raise inside cuda_compile; the log stays empty
    text = ptx.rstrip(b"\0").decode()
    assert f".target sm_{arch[-2:]}" in text
    entries = re.findall(r"\.entry (\w+)\(", text)
    assert sorted(entries) == sorted(functions)
    assert ".local" not in text, "a kernel spills to local memory"


def test_machine_code_compiles_for_the_architectures_the_device_path_loads() -> None:
    native = nvrtc_or_skip()
    for arch in ("sm_80", "sm_90"):
        cubin, _ = native.cuda_compile("cross_entropy.cu", arch)
        assert cubin[:4] == b"\x7fELF"  # a cubin is an ELF image


def test_nvrtc_is_preloaded_from_the_pip_packages() -> None:
    # In a fresh interpreter without torch: the preload alone must make NVRTC loadable.
    code = (
        "import sys; from ferrofix import _cuda; path = _cuda.preload_nvrtc(); "
        "assert 'torch' not in sys.modules; "
        "print(path is not None or _cuda._nvrtc_loaded(), _cuda.core().nvrtc_available())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    if not _cuda.nvrtc_candidates():
        pytest.skip("no pip-installed NVRTC here")
    assert out.stdout.split() == ["True", "True"]


BAD_CALLS = [
    (
        lambda n: n.cuda_compile("nope.cu", "compute_80"),
        ConfigError,
        'kernel: must be one of cross_entropy.cu, got "nope.cu"',
    ),
    (
        lambda n: n.cuda_compile("cross_entropy.cu", "sm90"),
        ConfigError,
        "arch: must be 'compute_XY' (PTX) or 'sm_XY' (cubin) with XY >= 50, got \"sm90\"",
    ),
    (
        lambda n: n.cuda_compile("cross_entropy.cu", "compute_35"),
        ConfigError,
        "arch: must be 'compute_XY' (PTX) or 'sm_XY' (cubin) with XY >= 50, got \"compute_35\"",
    ),
    (
        lambda n: n.cuda_loss_plan(0, 8, 100, "bfloat16", 0),
        ConfigError,
        "splits: must be in [1, 65535], got 0",
    ),
    (
        lambda n: n.cuda_scale_gradient(0, 0, "float64", 16, 4, 32),
        DtypeError,
        "causal_lm_loss on CUDA does not support dtype float64; "
        "supported: float32, bfloat16, float16",
    ),
    (
        lambda n: n.cuda_scale_gradient(0, 0, "bfloat16", 0, 4, 32),
        ConfigError,
        "buffers: grad and scale must be device pointers, got null",
    ),
    (
        lambda n: n.cuda_loss_plan(0, 8, 100, "float64"),
        DtypeError,
        "causal_lm_loss on CUDA does not support dtype float64; "
        "supported: float32, bfloat16, float16",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_CALLS)
def test_bad_inputs_name_the_argument(call, error, message) -> None:
    with pytest.raises(error) as raised:
        call(_cuda.core())
    assert str(raised.value) == message


def test_probes_answer_without_a_gpu() -> None:
    native = _cuda.core()
    available = native.cuda_available()
    assert isinstance(available, bool)
    if available:
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(CudaUnavailableError, match=r"^CUDA is not available: "):
        native.cuda_devices()
    with pytest.raises(CudaUnavailableError, match=r"^CUDA is not available: "):
        native.cuda_loss_plan(0, 8, 100, "float32")
    with pytest.raises(CudaUnavailableError, match=r"^CUDA is not available: "):
        native.cuda_causal_lm_loss(
            0, 0, "float32", [2, 3, 5], [2, 3], shift=True, ignore_index=-100,
            reduction="mean", z_loss_scale=0.0, softcap=None, label_smoothing=0.0,
            num_items_in_batch=None, logits=16, grad=0, labels=32, labels_i64=True,
            row_loss=48, lse=64, counters=80, result=96, workspace=0, splits=1, threads=32,
            cluster=0, row_blocks=0,
        )  # fmt: skip


def test_launch_rejects_bad_calls_before_touching_a_device() -> None:
    native = _cuda.core()
    call = {
        "shift": True, "ignore_index": -100, "reduction": "mean", "z_loss_scale": 0.0,
        "softcap": None, "label_smoothing": 0.0, "num_items_in_batch": None, "logits": 16,
        "grad": 0, "labels": 32, "labels_i64": True, "row_loss": 48, "lse": 64,
        "counters": 80, "result": 96, "workspace": 0, "splits": 1, "threads": 32,
        "cluster": 0, "row_blocks": 0,
    }  # fmt: skip
    cases = [
        (("float64", [2, 3, 5], [2, 3]), {}, "causal_lm_loss on CUDA does not support dtype"),
        (("float32", [2, 3, 5], [2, 4]), {}, "labels: expected shape (2, 3)"),
        (("float32", [2, 3, 5], [2, 3]), {"reduction": "avg"}, "reduction: must be one of"),
        (("float32", [2, 3, 5], [2, 3]), {"label_smoothing": 1.5}, "label_smoothing: must be"),
        (("float32", [2, 3, 5], [2, 3]), {"lse": 0}, "buffers: lse must be a device pointer"),
        (("float32", [2, 3, 5], [2, 3]), {"threads": 48}, "threads: must be a multiple of 32"),
        (("float32", [2, 3, 5], [2, 3]), {"cluster": 3}, "cluster: must be 0 (fused), or 1,"),
        (("float32", [2, 3, 5], [2, 3]), {"cluster": 1, "threads": 512}, "threads: must be at"),
    ]
    for (dtype, logits_shape, labels_shape), change, message in cases:
        with pytest.raises((ConfigError, TypeError, ValueError)) as raised:
            native.cuda_causal_lm_loss(0, 0, dtype, logits_shape, labels_shape, **call | change)
        assert str(raised.value).startswith(message), raised.value


def test_doctor_reports_cuda_and_compiles_every_kernel() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ferrofix", "doctor"], capture_output=True, text=True, check=True
    )
    lines = out.stdout.splitlines()
    assert any(line.startswith("CUDA driver: ") for line in lines)
    nvrtc = [line for line in lines if line.startswith("NVRTC: ")]
    assert len(nvrtc) == 1
    if "not available" not in nvrtc[0]:
        compiled = [line for line in lines if line.startswith("kernels: ")]
        assert compiled, lines
        assert not any("FAILED" in line for line in compiled), compiled


def test_disk_cache_keeps_one_image_per_source_and_architecture(tmp_path) -> None:
    nvrtc_or_skip()
    code = (
        "from ferrofix import _cuda; n = _cuda.core(); "
        "a = n.cuda_compile('cross_entropy.cu', 'compute_80', cached=True)[0]; "
        "b = n.cuda_compile('cross_entropy.cu', 'compute_80', cached=True)[0]; "
        "c = n.cuda_compile('cross_entropy.cu', 'compute_80')[0]; "
        "print(a == b == c)"
    )
    env = dict(os.environ, FERROFIX_KERNEL_CACHE=str(tmp_path))
    for _ in range(2):  # the second process reads the image the first one wrote
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        assert out.stdout.strip() == "True"
        files = sorted(p.name for p in tmp_path.iterdir())
        assert len(files) == 1
        assert re.fullmatch(r"cross_entropy-compute_80-[0-9a-f]{16}\.ptx", files[0])


def test_cuda_available_is_public_and_agrees_with_the_probes() -> None:
    import ferrofix

    native = _cuda.core()
    assert ferrofix.cuda_available() is (native.cuda_available() and native.nvrtc_available())
