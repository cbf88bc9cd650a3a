"""The machine's physical memory as the output-size checks report it, read independently."""

from __future__ import annotations

import os

import pytest


def physical_memory_gib() -> float:
    """Physical memory in GiB (POSIX sysconf), as messages print it (one decimal)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30


def beyond_memory(needed: str) -> str:
    """The tail of a refusal: "<needed>, more than this machine's memory (N GiB)"."""
    return f"{needed}, more than this machine's memory ({physical_memory_gib():.1f} GiB)"


def skip_if_it_fits(needed_gib: int) -> pytest.MarkDecorator:
    """Skip a refusal test on a machine with ``needed_gib`` of memory: it would not refuse."""
    return pytest.mark.skipif(
        physical_memory_gib() >= needed_gib, reason="this machine could hold it"
    )
