"""Seeds: the run's base seed, per-test seeds, and the seed fixtures.

A test's seed is ``(base_seed + crc32(nodeid)) % 2**32``: stable across runs, machines,
test order and xdist workers, distinct between tests, and small enough for
``numpy.random.seed``. The base seed comes from ``--ferrofix-seed`` (default 0) and reaches
xdist workers through ``workerinput`` so ``--ferrofix-seed=random`` agrees everywhere.

The *current* seed is what ``ferrofix.rng`` uses when called with ``seed=None``: the
per-test seed during a test, unless pytest-randomly reseeds it through its
``random_seeder`` entry point (``reseed``) or ``fixed_seed`` sets it.
"""

from __future__ import annotations

import importlib.util
import random
import secrets
import sys
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from ferrofix._args import integer

__all__ = ["current_seed", "ferrofix_seed", "fixed_seed", "parse_seed", "reseed", "test_seed"]

BASE_SEED_KEY = pytest.StashKey[int]()
_WORKERINPUT_KEY = "ferrofix_seed"
_current_seed = 0


def current_seed() -> int:
    """The seed ``ferrofix.rng`` uses for ``seed=None``."""
    return _current_seed


def reseed(seed: int) -> None:
    """Set the current seed, any integer taken mod 2**64 (pytest-randomly calls this before
    each test phase)."""
    global _current_seed
    _current_seed = integer("seed", seed) % 2**64


def parse_seed(text: str) -> int:
    """Parse a ``--ferrofix-seed`` value: an integer in [0, 2**64) or ``random``.

    Raises:
        ValueError: with a message naming the option and the allowed values.
    """
    text = str(text).strip()
    if text == "random":
        return secrets.randbelow(2**32)
    try:
        seed = int(text, 10)
    except ValueError:
        seed = -1
    if not 0 <= seed < 2**64:
        raise ValueError(
            f"--ferrofix-seed must be an integer in [0, 2**64) or 'random', got {text!r}"
        )
    return seed


def test_seed(nodeid: str, base_seed: int) -> int:
    """The seed of the test ``nodeid`` in a run with ``base_seed``."""
    return (base_seed + zlib.crc32(nodeid.encode("utf-8"))) % 2**32


test_seed.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def base_seed(config: pytest.Config) -> int:
    """The run's base seed (0 when the plugin is not active)."""
    return config.stash.get(BASE_SEED_KEY, 0)


def configure_base_seed(config: pytest.Config, option_value: str) -> int:
    """Resolve and stash the base seed; an xdist worker takes the controller's."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and _WORKERINPUT_KEY in workerinput:
        seed = int(workerinput[_WORKERINPUT_KEY])
    else:
        seed = parse_seed(option_value)
    config.stash[BASE_SEED_KEY] = seed
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistSeedHooks(seed), "ferrofix-xdist-seed")
    return seed


class _XdistSeedHooks:
    """Controller-side xdist hooks; registered only when xdist is loaded."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_WORKERINPUT_KEY] = self.seed


def _seed_of(request: pytest.FixtureRequest) -> int:
    return test_seed(request.node.nodeid, base_seed(request.config))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    reseed(test_seed(item.nodeid, base_seed(item.config)))


@pytest.fixture
def ferrofix_seed(request: pytest.FixtureRequest) -> int:
    """This test's seed: ``(--ferrofix-seed + crc32(nodeid)) % 2**32``.

    Stable across runs, test order and xdist workers; distinct between tests.
    """
    return _seed_of(request)


@pytest.fixture
def fixed_seed(request: pytest.FixtureRequest) -> Iterator[int]:
    """Seed ``random``, numpy's global RNG, torch and ferrofix with this test's seed.

    Yields the seed. numpy and torch are seeded when importable. The previous states of
    ``random``, numpy, torch's CPU generator and ferrofix are restored after the test.
    """
    seed = _seed_of(request)
    restore = _seed_everything(seed)
    try:
        yield seed
    finally:
        restore()


def _seed_everything(seed: int) -> Any:
    saved_random = random.getstate()
    saved_current = _current_seed
    random.seed(seed)
    reseed(seed)
    np = _import_if_available("numpy")
    saved_numpy = None
    if np is not None:
        saved_numpy = np.random.get_state()
        np.random.seed(seed)
    torch = _import_if_available("torch")
    saved_torch = None
    if torch is not None:
        saved_torch = torch.random.get_rng_state()
        torch.manual_seed(seed)

    def restore() -> None:
        random.setstate(saved_random)
        reseed(saved_current)
        if np is not None:
            np.random.set_state(saved_numpy)
        if torch is not None:
            torch.random.set_rng_state(saved_torch)

    return restore


def _import_if_available(name: str) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)
