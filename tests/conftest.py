from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    """The real data sets beside the repository; tests using them skip where they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`$RECTIFIERS_CACHE` of the whole session (and of the processes it starts): the tests neither
    read nor fill the user's cache, and the fused kernel is built once per session."""
    cache = tmp_path_factory.mktemp("rectifiers-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECTIFIERS_CACHE", str(cache))
        yield cache
