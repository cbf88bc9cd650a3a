"""Identity of the native extension and the lazy, version-checked loading."""

from __future__ import annotations

import subprocess
import sys
import types

import ferrofix
import pytest
from ferrofix import _native


def test_extension_reports_version_profile_and_threads() -> None:
    core = _native.core()
    assert core.__version__ == ferrofix.__version__
    assert core.build_profile in ("release", "debug")
    assert core.num_threads() >= 1


def test_versions_agree_across_python_cargo_and_pyproject() -> None:
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    cargo = tomllib.loads((root / "Cargo.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["version"] == ferrofix.__version__
    assert cargo["workspace"]["package"]["version"] == ferrofix.__version__


def test_a_stale_extension_is_an_import_error_saying_how_to_rebuild() -> None:
    stale = types.ModuleType("ferrofix._core")
    stale.__version__ = "0.0.1"
    stale.__file__ = "/somewhere/_core.abi3.so"
    with pytest.raises(ImportError) as info:
        _native.check_version(stale)
    assert str(info.value) == (
        f"ferrofix {ferrofix.__version__} found a native extension built from version 0.0.1 "
        "(/somewhere/_core.abi3.so); rebuild with pip install -e ."
    )


def test_stale_extension_fails_on_first_use_in_a_fresh_interpreter() -> None:
    code = (
        "import sys, types\n"
        "fake = types.ModuleType('ferrofix._core'); fake.__version__ = '9.9.9'\n"
        "sys.modules['ferrofix._core'] = fake\n"
        "import ferrofix.plugin\n"  # the plugin itself still imports fine
        "from ferrofix import rng\n"
        "try:\n    rng.uniform(3, 0)\nexcept ImportError as e:\n    print('IMPORTERROR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "IMPORTERROR" in out.stdout
    assert "rebuild with pip install -e ." in out.stdout


def test_importing_the_package_and_plugin_loads_no_numpy_torch_or_extension() -> None:
    code = (
        "import sys, ferrofix, ferrofix.plugin, ferrofix.fixtures\n"
        "print(sorted(m for m in ('numpy', 'torch', 'ferrofix._core') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_loading_the_plugin_leaves_the_heavy_modules_to_first_use() -> None:
    # pytest imports (and, for an installed plugin, assertion-rewrites) every module the
    # plugin loads, in every run; the fixture modules import these only when a fixture runs.
    code = (
        "import importlib, sys, ferrofix.plugin\n"
        "for name in ferrofix.plugin.PLUGIN_MODULES: importlib.import_module(name)\n"
        "heavy = ('tokenizers', 'noise', 'packing', 'loss', 'ddpm', 'rng', 'assertions')\n"
        "print(sorted(m for m in heavy if f'ferrofix.{m}' in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_of_the_facade_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        ferrofix.nope  # noqa: B018


def test_type_information_ships_with_the_package() -> None:
    from pathlib import Path

    package = Path(ferrofix.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_core.pyi").is_file()
