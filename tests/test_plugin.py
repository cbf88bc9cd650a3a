"""The plugin's options, markers, aliases and report header, run through pytester."""

from __future__ import annotations

import pytest

SUITE = """
import pytest

@pytest.mark.slow
def test_slow(): pass

@pytest.mark.extra_slow
def test_extra_slow(): pass

@pytest.mark.smoke
def test_plain(): pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", *args)


REGISTERED = """
import ferrofix.plugin

def test_registered(pytestconfig):
    manager = pytestconfig.pluginmanager
    print("REGISTERED", [n for n in ferrofix.plugin.PLUGIN_MODULES if manager.has_plugin(n)])
"""


def test_every_concern_module_is_registered_under_its_name(pytester: pytest.Pytester) -> None:
    from ferrofix.plugin import PLUGIN_MODULES

    pytester.makepyfile(test_registered=REGISTERED)
    result = run(pytester, "-s")
    result.assert_outcomes(passed=1)
    assert f"REGISTERED {list(PLUGIN_MODULES)}" in result.stdout.str()


def test_a_concern_module_can_be_left_out_like_any_plugin(pytester: pytest.Pytester) -> None:
    # -p no:<module> keeps that module's fixtures out and the rest of the plugin in.
    pytester.makepyfile(
        test_fixtures="def test_uses(simple_tokenizer): pass\ndef test_other(packed_batch): pass\n"
    )
    result = run(pytester, "-p", "no:ferrofix.fixtures.tokenizers")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'simple_tokenizer' not found*"])


def test_markers_are_registered_with_descriptions(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--markers")
    for name in ("slow", "extra_slow", "gpu", "smoke", "unit", "integration", "e2e"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}: *"])


def test_default_deselects_extra_slow_only(suite: pytest.Pytester) -> None:
    result = run(suite, "--strict-markers")
    result.assert_outcomes(passed=2, deselected=1)


@pytest.mark.parametrize("flag", ["--skip-slow", "--ferrofix-skip-slow"])
def test_skip_slow_deselects_slow_tests(suite: pytest.Pytester, flag: str) -> None:
    run(suite, flag).assert_outcomes(passed=1, deselected=2)


@pytest.mark.parametrize("flag", ["--run-extra-slow", "--ferrofix-run-extra-slow"])
def test_run_extra_slow_runs_them(suite: pytest.Pytester, flag: str) -> None:
    run(suite, flag).assert_outcomes(passed=3)


@pytest.mark.parametrize("flag", ["--show-skipped", "--ferrofix-show-skipped"])
def test_show_skipped_reports_reasons_instead_of_deselecting(
    suite: pytest.Pytester, flag: str
) -> None:
    result = run(suite, "--skip-slow", flag, "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "*test_suite.py:*: slow test deselected by --skip-slow",
            "*test_suite.py:*: extra_slow test: pass --run-extra-slow to run it",
        ]
    )


def test_ini_keys_set_the_same_switches(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\nferrofix_skip_slow = true\nferrofix_run_extra_slow = true\n")
    run(suite, "--strict-config").assert_outcomes(passed=2, deselected=1)


def test_options_live_in_the_ferrofix_group(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(
        [
            "ferrofix: deterministic ML test fixtures and checks:",
            "*--ferrofix-skip-slow*",
            "*--ferrofix-require-gpu*",
            "*--ferrofix-seed=SEED*",
            "*--ferrofix-threads=N*",
            "*--skip-slow*Alias of --ferrofix-skip-slow: Deselect tests marked",
        ]
    )
    result.stdout.fnmatch_lines(["*ferrofix_seed (string):*"])


BAD_OPTIONS = [
    (("--ferrofix-threads=0",), "ERROR: --ferrofix-threads must be an integer >= 1, got '0'"),
    (("--ferrofix-threads=two",), "ERROR: --ferrofix-threads must be an integer >= 1, got 'two'"),
    (
        ("--ferrofix-threads=100000",),
        "ERROR: --ferrofix-threads must be at most 1024, got '100000'",
    ),
    (
        ("--ferrofix-seed=abc",),
        "ERROR: --ferrofix-seed must be an integer in [[]0, 2**64) or 'random', got 'abc'",
    ),
    (
        ("--ferrofix-seed=-3",),
        "ERROR: --ferrofix-seed must be an integer in [[]0, 2**64) or 'random', got '-3'",
    ),
    (
        ("--ferrofix-seed=18446744073709551616",),
        "ERROR: --ferrofix-seed must be an integer in [[]0, 2**64) or 'random', "
        "got '18446744073709551616'",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS)
def test_bad_option_values_are_usage_errors(
    suite: pytest.Pytester, args: tuple[str, ...], message: str
) -> None:
    result = run(suite, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FERROFIX_NUM_THREADS", "0", "FERROFIX_NUM_THREADS must be an integer >= 1, got '0'"),
        ("FERROFIX_NUM_THREADS", "5000", "FERROFIX_NUM_THREADS must be at most 1024, got '5000'"),
        ("FERROFIX_BIND_THREADS", "yes", "FERROFIX_BIND_THREADS must be 0 or 1, got 'yes'"),
    ],
)
def test_malformed_thread_environment_is_a_usage_error(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = run(suite)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_report_header_is_one_line_with_version_build_threads_cuda_and_seed(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FERROFIX_NUM_THREADS", raising=False)
    result = run(suite, "--ferrofix-seed=7", "--ferrofix-threads=3")
    import ferrofix

    result.stdout.fnmatch_lines(
        [f"ferrofix {ferrofix.__version__}: * build, threads: 3, CUDA: *, seed: 7"]
    )


def test_threads_option_sizes_the_pool_but_the_environment_wins(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        "import ferrofix\ndef test_threads():\n    print('THREADS', ferrofix.num_threads())\n"
    )
    monkeypatch.delenv("FERROFIX_NUM_THREADS", raising=False)
    run(pytester, "-s", "--ferrofix-threads=3").stdout.fnmatch_lines(["*THREADS 3*"])
    monkeypatch.setenv("FERROFIX_NUM_THREADS", "2")
    run(pytester, "-s", "--ferrofix-threads=3").stdout.fnmatch_lines(["*THREADS 2*"])


def test_random_seed_is_picked_and_printed(suite: pytest.Pytester) -> None:
    result = run(suite, "--ferrofix-seed=random")
    header = [line for line in result.outlines if line.startswith("ferrofix ")]
    assert len(header) == 1
    seed = int(header[0].rsplit("seed: ", 1)[1])
    assert 0 <= seed < 2**32


@pytest.mark.parametrize(
    ("args", "env", "threads"),
    [
        (("-n", "2"), {}, "{default} per worker"),
        (("-n", "2", "--ferrofix-threads=3"), {}, "3"),
        (("-n", "2", "--ferrofix-threads=3"), {"FERROFIX_NUM_THREADS": "1"}, "1 per worker"),
    ],
)
def test_header_threads_under_xdist(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args, env, threads
) -> None:
    import os

    monkeypatch.delenv("FERROFIX_NUM_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    default = max(1, (os.cpu_count() or 1) // 2)
    result = run(suite, *args)
    result.stdout.fnmatch_lines([f"ferrofix *, threads: {threads.format(default=default)}, *"])
