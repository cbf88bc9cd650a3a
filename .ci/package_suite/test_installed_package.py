"""Checks of the package as PyPI users get it: `.ci/run package` builds the source
distribution, installs it into fresh virtual environments (numpy and pytest only, no torch:
once the newest releases, once the oldest pyproject.toml allows) and runs this file from
outside the checkout, so a file the sdist leaves out, a plugin entry point it loses, or an
API the oldest supported pytest or numpy lacks fails here instead of on a user's machine."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
from pathlib import Path

import ferrofix
import numpy as np
import pytest
from ferrofix import rng
from ferrofix.packing import assert_valid_packing


def test_the_package_comes_from_site_packages_not_the_checkout() -> None:
    assert "site-packages" in Path(ferrofix.__file__).parts


def test_the_shipped_files_are_installed() -> None:
    package = importlib.resources.files("ferrofix")
    for name in ("py.typed", "_core.pyi", "data/tiny_corpus.txt"):
        assert package.joinpath(name).is_file(), name


def test_the_native_core_gives_the_same_bits_as_everywhere() -> None:
    # The generator's output is a pure function of (seed, stream, index) on every machine;
    # these are its values, recorded from a build of the checkout.
    expected = [0.7501522221031126, 0.7952840373401903, 0.008453113028331405, 0.25012847394454263]
    assert rng.uniform(4, 7).tolist() == expected
    assert rng.integers(0, 10, 8, 3).tolist() == [1, 5, 7, 1, 5, 1, 3, 2]


def test_the_plugin_brings_its_fixtures(
    simple_tokenizer, bpe_tokenizer, packed_batch, dummy_noise_schedule
) -> None:
    assert simple_tokenizer.vocab_size == 57
    text = "a packaged tokenizer"
    assert bpe_tokenizer.decode(bpe_tokenizer.encode(text)) == text
    assert_valid_packing(packed_batch.batch, packed_batch.sequences, packed_batch.capacity)
    assert np.asarray(packed_batch.batch["input_ids"]).shape[1] == packed_batch.capacity
    with pytest.raises(NotImplementedError):
        dummy_noise_schedule.total_noise(0.5)


@pytest.mark.slow
@pytest.mark.gpu
def test_markers_are_registered() -> None:
    """Collected under --strict-markers; the gpu marker skips it here (no CUDA)."""


def test_doctor_runs_without_torch_or_cuda() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ferrofix", "doctor"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "native extension" in done.stdout


def test_a_suites_own_option_keeps_its_meaning(pytester: pytest.Pytester) -> None:
    """pytest 8 reports a clashing option name only when it parses the command line, where
    the clash would stop the run: the plugin must leave a name the suite took alone."""
    pytester.makeconftest(
        """
        import pytest

        def pytest_addoption(parser):
            parser.addoption("--skip-slow", action="store_true", help="the suite's own")
            parser.addoption("--show-gpu-memory", action="store_true", help="the suite's own")

        def pytest_collection_modifyitems(config, items):
            if config.getoption("--skip-slow"):
                skip = pytest.mark.skip(reason="the suite's --skip-slow")
                for item in items:
                    if "slow" in item.keywords:
                        item.add_marker(skip)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slow
        def test_slow(): pass

        def test_fast(request):
            assert request.config.getoption("--show-gpu-memory") is True
        """
    )
    result = pytester.runpytest("--strict-markers", "--skip-slow", "--show-gpu-memory")
    result.assert_outcomes(passed=1, skipped=1)
