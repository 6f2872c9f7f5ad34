"""One training process per run directory: a lock file that names its holder.

Two runs in one `train.out` would interleave their checkpoints and metrics. The main process holds
`run.lock` (its pid and host, as JSON) for the whole run and removes it however the run ends; a
second run is refused with a message naming the holder. A lock of a dead pid on this host is stale
and taken over; one from another host cannot be checked, so it is refused and the message says which
file to delete.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rectifiers.atomic_file import process_alive, temp_path

__all__ = ["LOCK_NAME", "RunDirectoryBusyError", "run_lock"]

LOCK_NAME = "run.lock"


class RunDirectoryBusyError(ValueError):
    """Another process trains in the run directory (or did, on a host that cannot be checked)."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold `run_dir/run.lock` for the block; raises RunDirectoryBusyError naming a live holder."""
    path = Path(run_dir) / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    created = [d for d in (path.parent, *path.parent.parents) if not d.exists()]  # leaf first
    _acquire(path, me)
    try:
        yield path
    finally:
        if _holder(path) == me:  # never remove a lock that someone took over
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        # A run refused before it wrote anything leaves no directory behind.
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote into it
                break


def _acquire(path: Path, me: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The lock appears whole or not at all: written under a private name, then hard-linked into
    # place, which fails when the name exists (one winner among concurrent starters).
    tmp = temp_path(path)
    tmp.write_text(json.dumps(me) + "\n")
    try:
        for _ in range(2):  # the second try follows the removal of a stale lock
            try:
                os.link(tmp, path)
                return
            except FileExistsError:
                holder = _holder(path)
                # stale only as a dead pid on this host: one on another host cannot be checked
                if holder is not None and (holder["host"] != me["host"] or process_alive(holder["pid"])):
                    raise RunDirectoryBusyError(_busy_message(path, holder, me["host"])) from None
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        raise RunDirectoryBusyError(f"{path.parent}: another process took the run lock {path} just now")
    finally:
        tmp.unlink()


def _holder(path: Path) -> dict[str, Any] | None:
    """The lock's {pid, host}; None when it is gone or unreadable (nobody can be holding it then)."""
    try:
        holder = json.loads(path.read_text())
        return {"pid": int(holder["pid"]), "host": str(holder["host"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _busy_message(path: Path, holder: dict[str, Any], host: str) -> str:
    who = f"pid {holder['pid']} on host {holder['host']}"
    if holder["host"] == host:
        return f"{path.parent} is in use by another run ({who}): wait for it to end, or choose another --out"
    return (
        f"{path.parent} is in use by another run ({who}), which cannot be checked from this host; "
        f"if that process is gone, delete {path} and start again"
    )
