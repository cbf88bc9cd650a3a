"""The size of ferrofix's own thread pool.

ferrofix runs native work on a rayon pool it owns (never the global one). Its size is, in
order: ``set_num_threads(n)``; the ``FERROFIX_NUM_THREADS`` environment variable; the
``--ferrofix-threads`` pytest option; else the machine's cores divided by the number of
pytest-xdist workers (at least 1). A process forked after the pool started runs serially.
Results never depend on the thread count.

When the pool has one thread per CPU the process may run on, each worker is bound to its own
CPU, so a worker woken after idling starts on an idle CPU at once instead of queueing behind
the thread that woke it (some VM schedulers move it only at the next balancing tick,
milliseconds later). ``FERROFIX_BIND_THREADS=0`` leaves the workers to the scheduler; a
smaller pool (pytest-xdist, ``FERROFIX_NUM_THREADS``, a CPU quota) is never bound.
"""

from __future__ import annotations

from ferrofix import _native
from ferrofix._args import optional_integer
from ferrofix.errors import ConfigError

__all__ = ["MAX_THREADS", "bound_cpus", "num_threads", "set_num_threads"]

# The largest pool, as the core enforces it (MAX_THREADS in rust/ferrofix-core/src/
# parallel.rs); here too so the pytest options can check it without loading the extension.
MAX_THREADS = 1024


def num_threads() -> int:
    """Threads the next native parallel job will use."""
    return int(_native.core().num_threads())


def bound_cpus() -> list[int]:
    """The CPU each pool worker is bound to, in worker order; empty when they are not bound.

    Starts the pool if it is not running.

    Raises:
        ConfigError: ``FERROFIX_BIND_THREADS`` or ``FERROFIX_NUM_THREADS`` is malformed.
    """
    return list(_native.core().bound_cpus())


def set_num_threads(n: int | None) -> None:
    """Fix the pool size to ``n`` (an int >= 1); ``None`` returns to the default sizing.

    Raises:
        ConfigError: ``n`` is not None and not an integer >= 1.
    """
    n = optional_integer("n", n, low=1)
    if n is not None and n > MAX_THREADS:
        raise ConfigError(f"n: must be at most {MAX_THREADS}, got {n}")
    _native.core().set_num_threads(n)
