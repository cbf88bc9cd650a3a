"""Model testing groups: one test suite, many model configurations, each deciding per group of
tests whether they run, run only in slow runs, or are skipped.

A suite registers its models (usually in conftest.py)::

    from ferrofix.groups import register_model

    register_model("gpt-tiny", groups={"basic": "main", "checkpoint": "normal"},
                   num_layers=2, compare_factor=2.0)

Tests that take the ``model_config`` fixture run once per registered model; a test marked
``@pytest.mark.model_testing_group("checkpoint")`` then follows the model's action for that
group: ``main`` runs, ``normal`` is marked ``slow``, ``unimportant`` and ``broken`` are marked
``extra_slow``, ``not_implemented`` (also the action of a group the model does not name) is
skipped. ``--ferrofix-models a,b`` (``--models`` when free) keeps only those models.
``model_config.compare_factor`` is meant for ``assert_close(..., compare_factor=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest

from ferrofix.errors import ConfigError
from ferrofix.options import settings

__all__ = ["ACTIONS", "ModelConfig", "clear_models", "model_config", "register_model"]

MARKER = "model_testing_group"
#: Action -> what it does to a test of that group.
ACTIONS = {
    "main": "run",
    "normal": "slow",
    "unimportant": "extra_slow",
    "broken": "extra_slow",
    "not_implemented": "skip",
}


@dataclass(frozen=True)
class ModelConfig:
    """A registered model: its name, constructor kwargs, group actions and compare factor."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)
    compare_factor: float = 1.0

    def action(self, group: str) -> str:
        """The action for ``group`` (``not_implemented`` when the model does not name it)."""
        return self.groups.get(group, "not_implemented")


_REGISTRY: dict[str, ModelConfig] = {}


def register_model(
    name: str,
    *,
    groups: Mapping[str, str] | None = None,
    compare_factor: float = 1.0,
    **kwargs: Any,
) -> ModelConfig:
    """Register (or replace) the model ``name``; returns its config."""
    if not isinstance(name, str) or not name or "," in name:
        raise ConfigError(f"name: must be a non-empty string without commas, got {name!r}")
    groups = dict(groups or {})
    for group, action in groups.items():
        if action not in ACTIONS:
            allowed = ", ".join(repr(a) for a in ACTIONS)
            raise ConfigError(
                f"groups: action of group {group!r} must be one of {allowed}; got {action!r}"
            )
    from ferrofix.assertions import checked_compare_factor

    compare_factor = checked_compare_factor(compare_factor)
    config = ModelConfig(
        name=name,
        kwargs=MappingProxyType(dict(kwargs)),
        groups=MappingProxyType(groups),
        compare_factor=float(compare_factor),
    )
    _REGISTRY[name] = config
    return config


def clear_models() -> None:
    """Forget every registered model (for tests of suites that register their own)."""
    _REGISTRY.clear()


def registered_models() -> list[ModelConfig]:
    """The registered models, in registration order."""
    return list(_REGISTRY.values())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(group): the test belongs to a model testing group; each model_config's "
        "action for the group decides whether it runs, is slow/extra_slow, or is skipped",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "model_config" not in metafunc.fixturenames:
        return
    models = registered_models()
    wanted = settings(metafunc.config).models
    if wanted is not None:
        known = {m.name for m in models}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise pytest.UsageError(
                f"--ferrofix-models: unknown models {unknown}; registered: {sorted(known)}"
            )
        models = [m for m in models if m.name in wanted]
    metafunc.parametrize("model_config", models, ids=[m.name for m in models], indirect=True)


@pytest.hookimpl(tryfirst=True)  # before the slow/extra_slow selection in ferrofix.markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker(MARKER)
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or "model_config" not in callspec.params:
            continue
        if not marker.args or not isinstance(marker.args[0], str):
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{MARKER} needs the group name, e.g. "
                f"@pytest.mark.{MARKER}('basic')"
            )
        group = marker.args[0]
        model: ModelConfig = callspec.params["model_config"]
        effect = ACTIONS[model.action(group)]
        if effect == "skip":
            item.add_marker(
                pytest.mark.skip(reason=f"model {model.name!r} does not implement group {group!r}")
            )
        elif effect != "run":
            item.add_marker(getattr(pytest.mark, effect))


@pytest.fixture
def model_config(request: pytest.FixtureRequest) -> ModelConfig:
    """The registered model this test runs for (one test per model)."""
    param = getattr(request, "param", None)
    if param is None:
        pytest.skip("no model registered: call ferrofix.groups.register_model in conftest.py")
    return param
