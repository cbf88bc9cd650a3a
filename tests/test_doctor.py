"""python -m ferrofix doctor."""

from __future__ import annotations

import subprocess
import sys

import ferrofix


def test_doctor_reports_the_installation_and_exits_0() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ferrofix", "doctor"], capture_output=True, text=True, check=True
    )
    lines = out.stdout.splitlines()
    assert lines[0] == f"ferrofix: {ferrofix.__version__}"
    assert any(line.startswith("native extension: " + ferrofix.__version__) for line in lines)
    assert any(line.startswith("threads: ") for line in lines)
    assert any(line.startswith("numpy: ") for line in lines)
    assert any(line.startswith("torch: ") for line in lines)
    assert any(line.startswith("CUDA driver: ") for line in lines)
    assert any(line.startswith("NVRTC: ") for line in lines)


def test_unknown_command_is_a_usage_error() -> None:
    out = subprocess.run([sys.executable, "-m", "ferrofix", "nope"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "invalid choice: 'nope'" in out.stderr
