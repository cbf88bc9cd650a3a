"""The crate-owned pool: sizing, bad input, small work on the caller, and the fork guard."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import ferrofix
import numpy as np
import pytest
from ferrofix import noise, packing, rng
from ferrofix.errors import ConfigError


@pytest.fixture
def restore_threads():
    yield
    ferrofix.set_num_threads(None)


def test_set_num_threads_overrides_and_none_restores(restore_threads) -> None:
    ferrofix.set_num_threads(3)
    assert ferrofix.num_threads() == 3
    ferrofix.set_num_threads(None)
    assert ferrofix.num_threads() >= 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_bad_thread_counts_are_rejected(bad) -> None:
    with pytest.raises(ConfigError) as info:
        ferrofix.set_num_threads(bad)
    assert str(info.value) == f"n: must be an integer >= 1 or None, got {bad!r}"


def test_pools_past_max_threads_are_refused(restore_threads) -> None:
    from ferrofix import _native, parallel

    # A typo such as 100000 used to start that many threads and crawl for minutes.
    assert parallel.MAX_THREADS == _native.core().max_threads == 1024
    with pytest.raises(ConfigError, match=r"^n: must be at most 1024, got 100000$"):
        ferrofix.set_num_threads(100_000)
    ferrofix.set_num_threads(3)
    with pytest.raises(ConfigError):
        ferrofix.set_num_threads(1025)
    assert ferrofix.num_threads() == 3  # a refused size leaves the pool as it was


def _run(env: dict[str, str], code: str = "import ferrofix; print(ferrofix.num_threads())") -> str:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FERROFIX_NUM_THREADS", "PYTEST_XDIST_WORKER_COUNT", "FERROFIX_BIND_THREADS")
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**full_env, **env}
    )
    return (out.stdout + out.stderr).strip()


def test_environment_sizes_the_pool() -> None:
    cores = os.cpu_count() or 1
    assert _run({"FERROFIX_NUM_THREADS": "3"}) == "3"
    assert _run({"FERROFIX_NUM_THREADS": "3", "PYTEST_XDIST_WORKER_COUNT": "8"}) == "3"
    assert _run({"PYTEST_XDIST_WORKER_COUNT": "2"}) == str(max(1, cores // 2))
    assert _run({"PYTEST_XDIST_WORKER_COUNT": str(cores * 4)}) == "1"
    assert _run({}) == str(cores)


def test_malformed_environment_is_a_config_error() -> None:
    out = _run({"FERROFIX_NUM_THREADS": "zero"})
    assert 'ConfigError: FERROFIX_NUM_THREADS: must be an integer >= 1, got "zero"' in out


BOUND = "from ferrofix import parallel; print(parallel.bound_cpus())"


def test_workers_are_bound_one_per_cpu_only_when_the_pool_owns_every_cpu() -> None:
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    # The default pool is smaller than the affinity mask under a CPU quota.
    default_threads = int(_run({}))
    own_every_cpu = sys.platform == "linux" and 1 < len(allowed) == default_threads
    assert _run({}, BOUND) == str(allowed if own_every_cpu else [])
    assert _run({"FERROFIX_BIND_THREADS": "1"}, BOUND) == _run({}, BOUND)
    # Turned off, one thread, or a pool smaller than the CPUs (xdist): left to the scheduler.
    assert _run({"FERROFIX_BIND_THREADS": "0"}, BOUND) == "[]"
    assert _run({"FERROFIX_NUM_THREADS": "1"}, BOUND) == "[]"
    assert _run({"FERROFIX_NUM_THREADS": str(len(allowed) + 1)}, BOUND) == "[]"
    assert _run({"PYTEST_XDIST_WORKER_COUNT": "2"}, BOUND) == "[]"


def test_bound_workers_give_the_same_results() -> None:
    code = "from ferrofix import rng; print(rng.uniform(100_000, 7).sum().hex())"
    assert _run({}, code) == _run({"FERROFIX_BIND_THREADS": "0"}, code)


def test_malformed_binding_environment_is_a_config_error() -> None:
    out = _run({"FERROFIX_BIND_THREADS": "yes"}, BOUND)
    assert 'ConfigError: FERROFIX_BIND_THREADS: must be 0 or 1, got "yes"' in out


def _child_draw(queue) -> None:
    from ferrofix import _native

    queue.put(
        (_native.core().is_forked_child(), ferrofix.num_threads(), rng.uniform(50_000, 3).tobytes())
    )


# Python 3.12+ warns on fork() in a threaded process: exactly the situation under test.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_runs_serially_and_gets_the_same_bits(restore_threads) -> None:
    ferrofix.set_num_threads(2)
    expected = rng.uniform(50_000, 3).tobytes()  # the parent's pool is now running
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_draw, args=(queue,))
    child.start()
    forked, threads, bits = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert forked is True
    assert threads == 1
    assert bits == expected


def _small_and_large_results() -> list[bytes]:
    """Results of ops that run small inputs on the calling thread and large ones on the pool."""
    ids = (np.arange(512 * 2048) % 1000).reshape(512, 2048)
    lengths = (np.arange(100_000) * 7919) % 4096 + 1
    return [
        noise.mask_tokens(ids[:2, :8], 0.5, 2, seed=7)[0].tobytes(),
        noise.mask_tokens(ids, 0.5, 2, seed=7)[0].tobytes(),
        packing.pack([3, 2, 3], 10).bin_of_item.tobytes(),
        packing.pack(lengths, 4096).bin_of_item.tobytes(),
    ]


def test_small_and_large_calls_from_many_threads_agree(restore_threads) -> None:
    ferrofix.set_num_threads(2)
    expected = _small_and_large_results()
    with ThreadPoolExecutor(4) as threads:
        results = list(threads.map(lambda _: _small_and_large_results(), range(12)))
    assert all(r == expected for r in results)
    assert _small_and_large_results() == expected  # and the main thread afterwards


def _pooled_results(texts, documents, logits, labels) -> tuple:
    """Outputs that come from ferrofix's buffer pools (1 MiB and more each), hashed while
    they are alive: a buffer handed to another thread too early would change them."""
    from ferrofix import loss, tokenizers

    tokenizer = tokenizers.SimpleTokenizer.for_numbers(50)
    ids, mask, lengths = tokenizer.batch_encode(texts)
    batch = packing.pack_sequences(documents, 2048)
    value, grad = loss.causal_lm_loss_and_grad(logits, labels, shift=False)
    return (
        hash(ids.tobytes() + mask.tobytes() + lengths.tobytes()),
        hash(batch["input_ids"].tobytes() + batch["position_ids"].tobytes()),
        value,
        hash(grad.tobytes()),
    )


def test_pooled_outputs_from_many_threads_agree(restore_threads) -> None:
    ferrofix.set_num_threads(2)
    draw = np.random.default_rng(0)
    texts = [" ".join(map(str, draw.integers(0, 50, 40))) for _ in range(4000)]  # (4000, 40)
    documents = [draw.integers(1, 1000, n).tolist() for n in draw.integers(10, 500, 600)]
    logits = draw.standard_normal((128, 2048)).astype(np.float32)  # grad 1 MiB
    labels = draw.integers(0, 2048, 128)
    inputs = (texts, documents, logits, labels)
    expected = _pooled_results(*inputs)
    with ThreadPoolExecutor(4) as threads:
        results = list(threads.map(lambda _: _pooled_results(*inputs), range(12)))
    assert all(r == expected for r in results)


def _child_small_and_large(queue) -> None:
    queue.put(_small_and_large_results())


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_after_small_calls_gets_the_same_results(restore_threads) -> None:
    # The parent ran small work in place (its main thread joined a one-thread pool of its
    # own) and large work on the pool; the child inherits the first and not the second.
    ferrofix.set_num_threads(2)
    expected = _small_and_large_results()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_small_and_large, args=(queue,))
    child.start()
    results = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert results == expected
