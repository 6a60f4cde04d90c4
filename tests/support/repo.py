"""Where things are: the checkout, its package, and the shared data beside it."""
from __future__ import annotations

from pathlib import Path

#: the checkout (this file is tests/support/repo.py)
REPO = Path(__file__).resolve().parents[2]
#: the package's source folder in the checkout
PACKAGE = REPO / "ifllm_lab"
#: ../shared beside the checkout (large test data that is not in git)
SHARED = REPO.parent / "shared"
#: the real IFLLM development data (a piece of the IFLLM release)
RELEASE_ARCHIVE = SHARED / "data" / "ifllm-dev.tar.xz"
