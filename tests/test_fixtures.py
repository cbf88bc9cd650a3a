"""Fixtures come from the plugin or, explicitly, from ferrofix.fixtures in a conftest."""

from __future__ import annotations

from pathlib import Path

import ferrofix.fixtures
import pytest
from ferrofix import seeding

USES_FIXTURES = """
def test_all(ferrofix_seed, fixed_seed, temp_dir, request):
    assert fixed_seed == ferrofix_seed
    assert temp_dir.is_dir() and not any(temp_dir.iterdir())
    (temp_dir / "x").write_text("x")
    print("TEMP", temp_dir)
"""


def test_ferrofix_fixtures_exports_every_fixture() -> None:
    assert set(ferrofix.fixtures.__all__) == {
        "model_config",
        "mock_dataset",
        "mock_model",
        "mock_optimizer",
        "mock_scheduler",
        "small_batch",
        "tiny_model",
        "tiny_model_kwargs",
        "vocab_size",
        "bpe_tokenizer",
        "byte_tokenizer",
        "causal_lm_loss_fixture",
        "char_tokenizer",
        "ddpm_schedule",
        "device",
        "document_lengths",
        "dummy_noise_schedule",
        "ferrofix_seed",
        "fixed_seed",
        "loglinear_schedule",
        "make_packed_batch",
        "make_tokenizer",
        "noise_schedule",
        "packed_batch",
        "simple_tokenizer",
        "small_vocab",
        "temp_dir",
    }


def test_ferrofix_seed_is_this_tests_seed(ferrofix_seed: int, request) -> None:
    assert ferrofix_seed == seeding.test_seed(request.node.nodeid, 0)


def test_temp_dir_is_fresh_and_removed_afterwards(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_FIXTURES)
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    line = next(line for line in result.outlines if "TEMP " in line)
    assert not Path(line.split("TEMP ", 1)[1].strip()).exists()


@pytest.mark.parametrize(
    "plugin_args",
    [("-p", "no:ferrofix"), ()],
    ids=["plugin-disabled", "plugin-also-loaded"],
)
def test_fixtures_imported_in_a_conftest_work(
    pytester: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    pytester.makeconftest(
        "from ferrofix.fixtures import device, ferrofix_seed, fixed_seed, temp_dir  # noqa\n"
    )
    pytester.makepyfile(USES_FIXTURES)
    pytester.runpytest_subprocess("-p", "no:randomly", *plugin_args).assert_outcomes(passed=1)


def test_fixtures_imported_with_autoload_disabled(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest("from ferrofix.fixtures import *  # noqa\n")
    pytester.makepyfile(USES_FIXTURES)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_overriding_one_fixture_changes_no_other(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import pytest\n"
        "@pytest.fixture\n"
        "def ferrofix_seed():\n"
        "    return -1\n"
        "@pytest.fixture\n"
        "def temp_dir():\n"
        "    return 'mine'\n"
    )
    pytester.makepyfile(
        "def test_x(fixed_seed, ferrofix_seed, temp_dir):\n"
        "    assert ferrofix_seed == -1 and temp_dir == 'mine'\n"
        "    assert fixed_seed >= 0\n"
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=1)
