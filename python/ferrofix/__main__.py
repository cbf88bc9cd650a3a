"""``python -m ferrofix doctor``: what this installation is and what it can see."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence


def _version_of(module_name: str) -> str:
    try:
        module = __import__(module_name)
    except Exception as error:  # not installed, or broken: say so, do not fail
        return f"not importable ({type(error).__name__})"
    return str(getattr(module, "__version__", "unknown"))


def doctor() -> int:
    """Print the installation report (CUDA driver, devices, NVRTC and a compile of every
    kernel included); always exits 0 so it can run anywhere."""
    import ferrofix

    lines = [f"ferrofix: {ferrofix.__version__}"]
    try:
        from ferrofix import _native

        core = _native.core()
        lines += [
            f"native extension: {core.__version__} ({core.build_profile} build)",
            f"threads: {core.num_threads()}",
        ]
    except Exception as error:
        lines.append(f"native extension: not loaded ({error})")
    lines += [
        f"python: {platform.python_version()} ({sys.executable})",
        f"numpy: {_version_of('numpy')}",
        f"torch: {_version_of('torch')}",
    ]
    try:
        from ferrofix import _cuda

        lines += _cuda.report()
    except Exception as error:  # the report must never fail the command
        lines.append(f"CUDA: report failed ({type(error).__name__}: {error})")
    print("\n".join(lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferrofix")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="report version, build, threads, CUDA and what is installed")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor()
    return 2  # unreachable: argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
