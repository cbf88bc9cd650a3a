"""An existing suite with its own conftest, options, markers and fixtures keeps working."""

from __future__ import annotations

import pytest

EXISTING_CONFTEST = """
import pytest

def pytest_addoption(parser):
    parser.addoption("--skip-slow", action="store_true", default=False, help="suite's own")
    parser.addoption("--run-extra-slow", action="store_true", default=False)
    parser.addoption("--show-skipped", action="store_true", default=False)
    parser.addoption("--show-gpu-memory", action="store_true", default=False)
    parser.addoption("--models", default="all")

def pytest_collection_modifyitems(config, items):
    keep = []
    for item in items:
        if config.getoption("--skip-slow") and item.get_closest_marker("slow"):
            continue
        if not config.getoption("--run-extra-slow") and item.get_closest_marker("extra_slow"):
            item.add_marker(pytest.mark.skip(reason="suite: needs --run-extra-slow"))
        keep.append(item)
    items[:] = keep

@pytest.fixture
def device():
    return "suite-device"

@pytest.fixture
def temp_dir(tmp_path):
    return tmp_path / "suite"

@pytest.fixture
def simple_tokenizer():
    return "suite-tokenizer"
"""

EXISTING_TESTS = """
import pytest

@pytest.mark.slow
def test_slow():
    pass

@pytest.mark.extra_slow
def test_extra_slow():
    pass

@pytest.mark.gpu
def test_gpu():
    pass

def test_models_option(request):
    assert request.config.getoption("--models") == "all"
    assert request.config.getoption("--show-gpu-memory") is False

def test_suite_fixtures_win(device, temp_dir, simple_tokenizer):
    assert device == "suite-device"
    assert temp_dir.name == "suite"
    assert simple_tokenizer == "suite-tokenizer"

def test_our_other_fixtures_still_work(fixed_seed):
    import random
    assert 0 <= fixed_seed < 2**32
    random.seed(fixed_seed)
    expected = random.random()
    random.seed(fixed_seed)
    assert random.random() == expected
"""

STRICT_INI = """
[pytest]
addopts = --strict-markers --strict-config -W error
markers =
    slow: the suite's own slow marker
    gpu: the suite's own gpu marker
"""


@pytest.fixture
def existing(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(EXISTING_CONFTEST)
    pytester.makepyfile(test_existing=EXISTING_TESTS)
    pytester.makeini(STRICT_INI)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", *args)


def test_suite_with_its_own_options_markers_and_fixtures_passes(existing) -> None:
    result = run(existing, "-rs")
    # extra_slow is skipped by the suite's own logic (ours stays off), gpu by ours.
    result.assert_outcomes(passed=4, skipped=2)
    result.stdout.fnmatch_lines(["*suite: needs --run-extra-slow*"])


def test_the_suites_skip_slow_meaning_wins(existing) -> None:
    result = run(existing, "--skip-slow", "--run-extra-slow", "--show-skipped")
    # The suite drops slow tests silently (no deselect count): its code, not ours.
    result.assert_outcomes(passed=4, skipped=1)
    assert "deselected" not in result.stdout.str()


def test_suite_passes_under_xdist(existing) -> None:
    result = run(existing, "-n", "2")
    result.assert_outcomes(passed=4, skipped=2)


def test_disabling_the_plugin_removes_every_trace(existing) -> None:
    # The suite relies on our extra_slow marker under --strict-markers: without the plugin
    # that is a collection error, which is itself a trace-free outcome.
    strict = run(existing, "-p", "no:ferrofix")
    strict.stdout.fnmatch_lines(["*'extra_slow' not found in `markers` configuration option*"])
    result = run(existing, "-p", "no:ferrofix", "-o", "addopts=")
    assert "ferrofix" not in result.stdout.str()
    # Without us nothing skips the gpu test and our fixtures do not exist.
    result.assert_outcomes(passed=4, skipped=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'fixed_seed' not found*"])
    for what in ("--help", "--markers", "--fixtures"):
        assert "ferrofix" not in run(existing, "-p", "no:ferrofix", what).stdout.str()


def test_disabled_autoload_with_explicit_plugin_works(
    existing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = run(existing, "-p", "ferrofix", "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=4, skipped=2)
