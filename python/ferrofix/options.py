"""Command-line options, ini keys and their friendly aliases.

Every option exists as ``--ferrofix-<name>`` in the ``ferrofix`` group with an ini key
``ferrofix_<name>``. The short aliases (``--skip-slow``, ``--run-extra-slow``,
``--show-skipped``, ``--show-gpu-memory N``) are added only after the initial conftests have
registered their own options, and only when no conftest took the name: a suite that defines
``--skip-slow`` keeps its meaning, and the matching feature of ours stays off.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Generator
from dataclasses import dataclass

import pytest

from ferrofix import _native
from ferrofix.parallel import MAX_THREADS
from ferrofix.seeding import configure_base_seed

__all__ = ["Settings", "settings"]

GROUP = "ferrofix"

# Friendly alias -> the ferrofix switch it stands for (each switch is a boolean flag).
ALIASES = {
    "--skip-slow": "skip_slow",
    "--run-extra-slow": "run_extra_slow",
    "--show-skipped": "show_skipped",
}
_FLAGS = {
    "skip_slow": "Deselect tests marked slow.",
    "run_extra_slow": "Run tests marked extra_slow (they are deselected otherwise).",
    "show_skipped": "Report deselected slow/extra_slow tests as skipped, with the reason.",
    "require_gpu": "Fail gpu-marked tests instead of skipping them when CUDA is missing.",
    "xdist_gpus": "Give each pytest-xdist worker its own GPU (CUDA_VISIBLE_DEVICES).",
}
# Options that take a value: name -> (metavar, ini default, help).
_VALUES = {
    "show_gpu_memory": (
        "N",
        "0",
        "List the N tests with the highest peak CUDA memory (allocated and reserved) in the "
        "terminal summary, across xdist workers.",
    ),
    "models": (
        "NAMES",
        "",
        "Run model_config-parametrized tests only for these registered models (comma separated).",
    ),
}
# Friendly alias -> the ferrofix option with a value it stands for.
VALUE_ALIASES = {"--show-gpu-memory": "show_gpu_memory", "--models": "models"}

_OWNED_ALIASES_KEY = pytest.StashKey[frozenset[str]]()
SETTINGS_KEY = pytest.StashKey["Settings"]()


@dataclass(frozen=True)
class Settings:
    """The resolved ferrofix settings of a run."""

    skip_slow: bool = False
    run_extra_slow: bool = False
    show_skipped: bool = False
    require_gpu: bool = False
    xdist_gpus: bool = False
    show_gpu_memory: int = 0
    models: tuple[str, ...] | None = None
    gate_extra_slow: bool = True  # False when the suite defines its own --run-extra-slow
    seed: int = 0
    threads: int | None = None


def settings(config: pytest.Config) -> Settings:
    """The run's settings (defaults when the plugin did not configure this run)."""
    return config.stash.get(SETTINGS_KEY, Settings())


def _dest(name: str) -> str:
    return f"ferrofix_{name}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "ferrofix: deterministic ML test fixtures and checks")
    for name, help_text in _FLAGS.items():
        flag = "--ferrofix-" + name.replace("_", "-")
        group.addoption(flag, action="store_true", default=None, dest=_dest(name), help=help_text)
        parser.addini(_dest(name), help_text, type="bool", default=False)
    seed_help = "Base seed of per-test seeds: an integer >= 0 or 'random' (default 0)."
    group.addoption(
        "--ferrofix-seed", dest=_dest("seed"), default=None, metavar="SEED", help=seed_help
    )
    parser.addini(_dest("seed"), seed_help, default="0")
    threads_help = "Threads of ferrofix's native pool (FERROFIX_NUM_THREADS wins)."
    group.addoption(
        "--ferrofix-threads", dest=_dest("threads"), default=None, metavar="N", help=threads_help
    )
    parser.addini(_dest("threads"), threads_help, default="")
    for name, (metavar, default, help_text) in _VALUES.items():
        group.addoption(
            "--ferrofix-" + name.replace("_", "-"),
            dest=_dest(name),
            default=None,
            metavar=metavar,
            help=help_text,
        )
        parser.addini(_dest(name), help_text, default=default)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser
) -> Generator[None, None, None]:
    result = yield  # the initial conftests have now added their own options
    early_config.stash[_OWNED_ALIASES_KEY] = frozenset(_add_free_aliases(parser))
    return result


def _taken_option_names(parser: pytest.Parser) -> set[str]:
    """The option names some group already holds.

    pytest 9 refuses a taken name when it is added, but pytest 8 only when it builds the
    command line, where the clash would stop the run; so look first. The groups are private
    to pytest: if they move, ``_add_free_aliases``'s ``except`` still covers pytest 9 on.
    """
    groups = [*getattr(parser, "_groups", ()), getattr(parser, "_anonymous", None)]
    return {
        option_name
        for group in groups
        for option in getattr(group, "options", ())
        for option_name in option.names()
    }


def _add_free_aliases(parser: pytest.Parser) -> list[str]:
    """Add each alias no conftest or other plugin took (their meaning wins); return those
    added."""
    group = parser.getgroup(GROUP)
    taken = _taken_option_names(parser)
    wanted = [
        (alias, name, _FLAGS[name], {"action": "store_true"}) for alias, name in ALIASES.items()
    ] + [
        (alias, name, _VALUES[name][2], {"metavar": _VALUES[name][0]})
        for alias, name in VALUE_ALIASES.items()
    ]
    owned = []
    for alias, name, help_text, attrs in wanted:
        if alias in taken:
            continue
        try:
            group.addoption(
                alias,
                default=None,
                dest=f"_ferrofix_alias_{name}",
                help=f"Alias of --ferrofix-{name.replace('_', '-')}: {help_text}",
                **attrs,
            )
        except (ValueError, argparse.ArgumentError):
            continue  # taken after all, where pytest keeps its groups elsewhere
        owned.append(alias)
    return owned


def _flag(config: pytest.Config, name: str, alias_owned: bool) -> bool:
    value = config.getoption(_dest(name))
    if value is None and alias_owned:
        value = config.getoption(f"_ferrofix_alias_{name}", default=None)
    if value is None:
        value = config.getini(_dest(name))
    return bool(value)


def _threads(config: pytest.Config) -> int | None:
    env = os.environ.get("FERROFIX_NUM_THREADS")
    if env is not None and not _positive_int(env):
        raise pytest.UsageError(f"FERROFIX_NUM_THREADS must be an integer >= 1, got {env!r}")
    if env is not None and int(env) > MAX_THREADS:
        raise pytest.UsageError(f"FERROFIX_NUM_THREADS must be at most {MAX_THREADS}, got {env!r}")
    bind = os.environ.get("FERROFIX_BIND_THREADS")
    if bind is not None and bind.strip() not in ("0", "1"):
        raise pytest.UsageError(f"FERROFIX_BIND_THREADS must be 0 or 1, got {bind!r}")
    text = config.getoption(_dest("threads"))
    if text is None:
        text = config.getini(_dest("threads")) or None
    if text is None:
        return None
    if not _positive_int(text):
        raise pytest.UsageError(f"--ferrofix-threads must be an integer >= 1, got {text!r}")
    if int(text) > MAX_THREADS:
        raise pytest.UsageError(f"--ferrofix-threads must be at most {MAX_THREADS}, got {text!r}")
    return int(text)


def _value(config: pytest.Config, name: str, alias_owned: bool) -> str:
    """A value option's text: --ferrofix-<name>, its alias, then the ini key."""
    text = config.getoption(_dest(name))
    if text is None and alias_owned:
        text = config.getoption(f"_ferrofix_alias_{name}", default=None)
    if text is None:
        text = config.getini(_dest(name))
    return str(text).strip()


def _count(config: pytest.Config, name: str, alias_owned: bool) -> int:
    """A non-negative integer option."""
    text = _value(config, name, alias_owned)
    if not text.isdecimal():
        flag = "--ferrofix-" + name.replace("_", "-")
        raise pytest.UsageError(f"{flag} must be an integer >= 0, got {text!r}")
    return int(text)


def _names(text: str) -> tuple[str, ...] | None:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    return names or None


def _positive_int(text: str) -> bool:
    text = text.strip()
    return text.isdecimal() and int(text) >= 1


def pytest_configure(config: pytest.Config) -> None:
    owned = config.stash.get(_OWNED_ALIASES_KEY, frozenset())
    seed_text = config.getoption(_dest("seed"))
    if seed_text is None:
        seed_text = config.getini(_dest("seed"))
    try:
        seed = configure_base_seed(config, seed_text)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    threads = _threads(config)
    config.stash[SETTINGS_KEY] = Settings(
        skip_slow=_flag(config, "skip_slow", "--skip-slow" in owned),
        run_extra_slow=_flag(config, "run_extra_slow", "--run-extra-slow" in owned),
        show_skipped=_flag(config, "show_skipped", "--show-skipped" in owned),
        require_gpu=_flag(config, "require_gpu", False),
        xdist_gpus=_flag(config, "xdist_gpus", False),
        show_gpu_memory=_count(config, "show_gpu_memory", "--show-gpu-memory" in owned),
        models=_names(_value(config, "models", "--models" in owned)),
        gate_extra_slow="--run-extra-slow" in owned,
        seed=seed,
        threads=threads,
    )
    _native.request_threads(threads)
