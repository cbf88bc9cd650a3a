"""Root conftest: the pytester fixture for plugin tests, and nothing user-facing."""

# numpy cannot be re-imported inside an in-process pytester run: import it once up front.
import numpy  # noqa: F401

pytest_plugins = ["pytester"]
