"""The size of ferrofix's own thread pool.

ferrofix runs native work on a rayon pool it owns (never the global one). Its size is, in
order: ``set_num_threads(n)``; the ``FERROFIX_NUM_THREADS`` environment variable; the
``--ferrofix-threads`` pytest option; else the machine's cores divided by the number of
pytest-xdist workers (at least 1). A process forked after the pool started runs serially.
Results never depend on the thread count.
"""

from __future__ import annotations

from ferrofix import _native
from ferrofix.errors import ConfigError

__all__ = ["num_threads", "set_num_threads"]


def num_threads() -> int:
    """Threads the next native parallel job will use."""
    return int(_native.core().num_threads())


def set_num_threads(n: int | None) -> None:
    """Fix the pool size to ``n`` (an int >= 1); ``None`` returns to the default sizing.

    Raises:
        ConfigError: ``n`` is not None and not an integer >= 1.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"n: must be an integer >= 1 or None, got {n!r}")
    _native.core().set_num_threads(n)
