"""Markers and what they do: ``slow`` / ``extra_slow`` selection.

Markers are registered with ``addinivalue_line`` so ``--strict-markers`` passes, also when
the suite declares the same marker itself. ``gpu`` is handled in ``devices.py``.
"""

from __future__ import annotations

import pytest

from ferrofix.options import settings

__all__ = ["MARKERS"]

MARKERS = {
    "slow": "slow test; deselect with --skip-slow (or --ferrofix-skip-slow)",
    "extra_slow": "very slow test; deselected unless --run-extra-slow (or "
    "--ferrofix-run-extra-slow) is given",
    "gpu": "needs a CUDA device; skipped without one (fails with --ferrofix-require-gpu)",
    "smoke": "quick end-to-end sanity check",
    "unit": "tests one unit in isolation",
    "integration": "tests several components together",
    "e2e": "tests a whole workflow end to end",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = settings(config)
    reasons = {}
    if run.skip_slow:
        reasons["slow"] = "slow test deselected by --skip-slow"
    if run.gate_extra_slow and not run.run_extra_slow:
        reasons["extra_slow"] = "extra_slow test: pass --run-extra-slow to run it"
    if not reasons:
        return
    kept, dropped = [], []
    for item in items:
        reason = next((r for m, r in reasons.items() if item.get_closest_marker(m)), None)
        if reason is None:
            kept.append(item)
        elif run.show_skipped:
            item.add_marker(pytest.mark.skip(reason=reason))
            kept.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
