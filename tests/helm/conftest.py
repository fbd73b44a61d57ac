from __future__ import annotations

import pytest

from .chart import Rendered, ci_value_files, load_yaml, render


@pytest.fixture(scope="session")
def ci_renders() -> dict[str, Rendered]:
    """Each value set under helm/doku-gateway/ci/, rendered once for the whole session."""
    return {path.name: render(load_yaml(path)) for path in ci_value_files()}
