"""Replacing a file or folder at once: a reader sees the old one or the whole new one, never a part.

The new content is written under a private name in the same folder (a rename is atomic only within
one file system) and renamed over the target when complete; a writer that fails or is killed leaves
the target untouched, and `remove_stale_temp_files` clears what a killed writer left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

# Temp names are `.NAME.tmp-PID`: hidden, and the PID tells whether their writer still runs.
TEMP_MARK = ".tmp-"


def temp_path(path: Path) -> Path:
    """The private name this process prepares `path`'s new content under."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


@contextlib.contextmanager
def replacing(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield the temp path at which to write `path`'s new content (a file or a folder); it is renamed
    over `path` when the block ends, and removed when the block raises.

    durable: fsync the new file and then its folder, so that the rename survives a power cut.
    """
    path = Path(path)
    tmp = temp_path(path)
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


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files in `folder` whose writer no longer runs.

    A process killed mid-write leaves `.NAME.tmp-PID` behind (the file it was replacing is intact);
    a checkpoint's is a checkpoint's size, so repeated crashes would otherwise fill the disk.
    """
    removed = []
    for tmp in Path(folder).glob(f".*{TEMP_MARK}*"):
        pid = tmp.name.rpartition(TEMP_MARK)[2]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host (this process counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


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
