"""Per-test seeds, the seed fixtures, xdist propagation and pytest-randomly reseeding."""

from __future__ import annotations

import importlib.metadata
import random
import zlib

import numpy as np
import pytest
from ferrofix import rng, seeding
from ferrofix.errors import ConfigError

SEED_PROBE = """
import random
import numpy as np
from ferrofix import rng

def test_a(ferrofix_seed, request):
    print("SEED", request.node.nodeid, ferrofix_seed, rng.uniform(1)[0])

def test_b(fixed_seed, request):
    print("FIXED", request.node.nodeid, fixed_seed, random.random(), np.random.random())
"""


def _seeds(result: pytest.RunResult, tag: str) -> dict[str, list[str]]:
    found = {}
    for line in result.outlines:
        if f"{tag} " in line:  # with -s, pytest's progress text may precede the print
            fields = line[line.index(f"{tag} ") :].split()
            found[fields[1]] = fields[2:]
    return found


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-s", *args)


def test_test_seed_is_base_plus_crc32_of_the_nodeid() -> None:
    node = "tests/test_x.py::test_y[1]"
    assert seeding.test_seed(node, 0) == zlib.crc32(node.encode())
    assert seeding.test_seed(node, 2**32 + 3) == (zlib.crc32(node.encode()) + 3) % 2**32


@pytest.mark.parametrize(("text", "seed"), [("0", 0), (" 17 ", 17), (str(2**64 - 1), 2**64 - 1)])
def test_parse_seed_accepts_integers(text: str, seed: int) -> None:
    assert seeding.parse_seed(text) == seed


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "", str(2**64)])
def test_parse_seed_rejects_the_rest(text: str) -> None:
    with pytest.raises(ValueError, match=r"--ferrofix-seed must be an integer in \[0, 2\*\*64\)"):
        seeding.parse_seed(text)


def test_seeds_are_per_test_stable_across_runs_and_follow_the_base(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_probe=SEED_PROBE)
    first, second = _seeds(run(pytester), "SEED"), _seeds(run(pytester), "SEED")
    assert first == second
    ((nodeid, (seed, draw)),) = first.items()
    assert int(seed) == seeding.test_seed(nodeid, 0)
    # rng with seed=None inside a test draws from the test's seed.
    assert float(draw) == rng.uniform(1, int(seed))[0]
    shifted = _seeds(run(pytester, "--ferrofix-seed=5"), "SEED")
    assert int(shifted[nodeid][0]) == seeding.test_seed(nodeid, 5)


def test_fixed_seed_seeds_random_and_numpy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_probe=SEED_PROBE)
    ((_nodeid, (seed, py_draw, np_draw)),) = _seeds(run(pytester), "FIXED").items()
    random.seed(int(seed))
    np.random.seed(int(seed))
    assert float(py_draw) == random.random()
    assert float(np_draw) == np.random.random()


def test_random_seed_reaches_every_xdist_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            f"test_w{i}": "def test_seed(ferrofix_seed, request):\n"
            "    import os\n"
            "    print('SEED', request.node.nodeid, ferrofix_seed)\n"
            "    with open(f'seed-{request.node.path.stem}-{os.getpid()}', 'w') as f:\n"
            "        f.write(f'{request.node.nodeid} {ferrofix_seed}')\n"
            for i in range(4)
        }
    )
    result = run(pytester, "-n", "2", "--ferrofix-seed=random")
    result.assert_outcomes(passed=4)
    header = next(line for line in result.outlines if line.startswith("ferrofix "))
    base = int(header.rsplit("seed: ", 1)[1])
    records = [p.read_text().split() for p in pytester.path.glob("seed-*")]
    assert len(records) == 4
    for nodeid, seed in records:
        assert int(seed) == seeding.test_seed(nodeid, base)


def test_pytest_randomly_reseeds_ferrofix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "from ferrofix import rng, seeding\n"
        "def test_reseeded():\n"
        "    print('CURRENT', seeding.current_seed(), rng.uniform(1)[0])\n"
    )
    result = pytester.runpytest_subprocess("-p", "randomly", "--randomly-seed=1234", "-s")
    result.assert_outcomes(passed=1)
    line = next(line for line in result.outlines if "CURRENT " in line)
    _, current, draw = line[line.index("CURRENT ") :].split()[:3]
    # pytest-randomly 4 hands each test its seed plus crc32(nodeid) for the call phase;
    # 3.x hands every test the seed itself.
    nodeid = "test_pytest_randomly_reseeds_ferrofix.py::test_reseeded"
    per_test = int(importlib.metadata.version("pytest-randomly").split(".")[0]) >= 4
    assert int(current) == 1234 + (zlib.crc32(nodeid.encode()) if per_test else 0)
    assert float(draw) == rng.uniform(1, int(current))[0]


def test_fixed_seed_restores_global_state(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import random\n"
        "import numpy as np\n"
        "def test_1(fixed_seed):\n"
        "    random.random(); np.random.random()\n"
        "def test_2():\n"
        "    random.seed(99); np.random.seed(99)\n"
        "    a = (random.random(), np.random.random())\n"
        "    random.seed(99); np.random.seed(99)\n"
        "    assert a == (random.random(), np.random.random())\n"
    )
    run(pytester).assert_outcomes(passed=2)


def test_reseed_sets_the_current_seed() -> None:
    saved = seeding.current_seed()
    try:
        seeding.reseed(77)
        assert seeding.current_seed() == 77
        assert rng.uniform(4).tobytes() == rng.uniform(4, 77).tobytes()
        seeding.reseed(-1)  # any integer, mod 2**64
        assert seeding.current_seed() == 2**64 - 1
        for bad in (None, "7", 1.5, True):
            with pytest.raises(ConfigError, match=f"seed: must be an integer, got {bad!r}"):
                seeding.reseed(bad)
        assert seeding.current_seed() == 2**64 - 1
    finally:
        seeding.reseed(saved)
