"""The wheel, built once per run for the packaging tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.wheel import build_wheel


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the package (pyproject.toml, README.md, ifllm_lab/)."""
    return build_wheel(tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel"))
