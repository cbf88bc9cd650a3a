"""Model testing groups: registration, per-group actions, --models selection, bad input."""

from __future__ import annotations

import pytest
from ferrofix import errors
from ferrofix.groups import ModelConfig, clear_models, register_model, registered_models

CONFTEST = """
from ferrofix.groups import register_model

register_model("alpha", groups={"basic": "main", "checkpoint": "normal"}, width=8)
register_model("beta", groups={"basic": "unimportant", "checkpoint": "broken"}, compare_factor=4)
register_model("gamma", groups={"basic": "main", "checkpoint": "not_implemented"})
"""

TESTS = """
import pytest


@pytest.mark.model_testing_group("basic")
def test_basic(model_config):
    assert model_config.name in ("alpha", "beta", "gamma")


@pytest.mark.model_testing_group("checkpoint")
def test_checkpoint(model_config):
    pass


@pytest.mark.model_testing_group("distributed")
def test_distributed(model_config):
    pass


def test_kwargs_and_factor(model_config):
    expected = {"alpha": ({"width": 8}, 1.0), "beta": ({}, 4.0), "gamma": ({}, 1.0)}
    assert (dict(model_config.kwargs), model_config.compare_factor) == expected[model_config.name]
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_models=TESTS)
    return pytester.runpytest_subprocess("-p", "no:randomly", "-rs", *args)


def test_actions_decide_run_slow_extra_slow_and_skip(pytester: pytest.Pytester) -> None:
    result = run(pytester)
    # basic: alpha, gamma run, beta extra_slow (deselected); checkpoint: alpha slow (runs),
    # beta extra_slow (deselected), gamma skipped; distributed: nobody names it, all skipped.
    result.assert_outcomes(passed=2 + 1 + 3, skipped=1 + 3, deselected=2)
    result.stdout.fnmatch_lines(["*model 'gamma' does not implement group 'checkpoint'*"])


def test_skip_slow_and_run_extra_slow(pytester: pytest.Pytester) -> None:
    run(pytester, "--skip-slow").assert_outcomes(passed=2 + 3, skipped=4, deselected=3)
    run(pytester, "--run-extra-slow").assert_outcomes(passed=3 + 2 + 3, skipped=4)


def test_models_option_restricts_the_configs(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--models", "gamma", "-v")
    result.assert_outcomes(passed=2, skipped=2)
    assert "alpha" not in result.stdout.str().split("short test summary")[0].split("collected")[1]
    run(pytester, "--ferrofix-models=alpha,beta").assert_outcomes(
        passed=1 + 1 + 2, skipped=2, deselected=2
    )


def test_unknown_model_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--models", "delta")
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert (
        "--ferrofix-models: unknown models ['delta']; registered: ['alpha', 'beta', 'gamma']"
        in output
    )


def test_model_config_action_defaults_to_not_implemented() -> None:
    config = ModelConfig("m", groups={"basic": "main"})
    assert config.action("basic") == "main"
    assert config.action("other") == "not_implemented"


def test_registry_registers_replaces_and_clears() -> None:
    saved = registered_models()
    try:
        clear_models()
        first = register_model("a", groups={"basic": "main"}, width=4)
        register_model("b")
        replaced = register_model("a", compare_factor=2)
        assert [c.name for c in registered_models()] == ["a", "b"]
        assert registered_models()[0] is replaced
        assert replaced is not first
        assert (dict(replaced.kwargs), replaced.compare_factor) == ({}, 2.0)
        clear_models()
        assert registered_models() == []
    finally:
        clear_models()
        for config in saved:
            register_model(
                config.name,
                groups=config.groups,
                compare_factor=config.compare_factor,
                **config.kwargs,
            )


BAD_INPUT = [
    (lambda: register_model(""), "name: must be a non-empty string without commas"),
    (lambda: register_model("a,b"), "name: must be a non-empty string without commas"),
    (
        lambda: register_model("m", groups={"basic": "sometimes"}),
        "groups: action of group 'basic' must be one of 'main', 'normal', 'unimportant', "
        "'broken', 'not_implemented'; got 'sometimes'",
    ),
    (lambda: register_model("m", compare_factor=0), "compare_factor: must be a finite number > 0"),
    (
        lambda: register_model("m", compare_factor=float("inf")),
        "compare_factor: must be a finite number > 0, got inf",
    ),
    (
        lambda: register_model("m", compare_factor=float("nan")),
        "compare_factor: must be a finite number > 0, got nan",
    ),
    (
        lambda: register_model("m", compare_factor=True),
        "compare_factor: must be a finite number > 0, got True",
    ),
    (
        lambda: register_model("m", compare_factor="2"),
        "compare_factor: must be a finite number > 0, got '2'",
    ),
]


@pytest.mark.parametrize(("call", "message"), BAD_INPUT)
def test_bad_input(call, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        call()
