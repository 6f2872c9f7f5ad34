"""Replacing a file or folder at once: a reader sees the old one or the whole new one, never a part.

The new content is written under a private name in the same folder (a rename is atomic only within
one file system) and renamed over the target when complete; a writer that fails or is killed leaves
the target untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

# Temp names are `.NAME.tmp-PID`: hidden, and the PID tells whether their writer still runs.
TEMP_MARK = ".tmp-"


@contextlib.contextmanager
def replacing(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield the temp path at which to write `path`'s new content (a file or a folder); it is renamed
    over `path` when the block ends, and removed when the block raises.

    durable: fsync the new file and then its folder, so that the rename survives a power cut.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
    _remove(tmp)  # left by a killed writer that had this PID
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    if durable:
        with contextlib.suppress(OSError):  # not every platform lets a folder be opened
            _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
