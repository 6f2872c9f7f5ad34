from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers import SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    """The real data sets beside the repository; tests using them skip where they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    """Give the session (and the processes it starts) a `$RECTIFIERS_CACHE` of its own before any test
    module is imported, since some load the fused kernel when collected: the tests neither read nor
    fill the user's cache, and the kernel is built once per session."""
    cache = tempfile.mkdtemp(prefix="rectifiers-cache-")
    os.environ["RECTIFIERS_CACHE"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
