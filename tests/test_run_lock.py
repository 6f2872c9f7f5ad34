"""The run directory's lock (`rectifiers.run_lock`): one holder, named; released; stale ones taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rectifiers.run_lock import LOCK_NAME, RunDirectoryBusyError, run_lock


def _last_child_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_held_for_the_block_and_released_after_it_even_on_error(tmp_path: Path):
    with pytest.raises(RuntimeError, match="inside"), run_lock(tmp_path / "run") as path:
        assert json.loads(path.read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}
        with pytest.raises(RunDirectoryBusyError, match=rf"pid {os.getpid()} on host"), run_lock(path.parent):
            pass  # the same process cannot start a second run there either
        raise RuntimeError("inside")
    assert not (tmp_path / "run").exists()  # it made the folder, nothing was written: gone again
    with run_lock(tmp_path / "kept" / "run") as path:
        (path.parent / "metrics.jsonl").write_text("")
    assert sorted(p.name for p in (tmp_path / "kept" / "run").iterdir()) == ["metrics.jsonl"]


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path: Path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": _last_child_pid(), "host": socket.gethostname()}))
    with run_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_holder_on_another_host_is_refused_with_what_to_do(tmp_path: Path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": _last_child_pid(), "host": "node-7"}))
    busy = pytest.raises(RunDirectoryBusyError, match=r"on host node-7\), which cannot be checked.*delete")
    with busy, run_lock(tmp_path):
        pass
    assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == "node-7"  # left as it was


def test_an_unreadable_lock_file_is_taken_over(tmp_path: Path):
    (tmp_path / LOCK_NAME).write_text("{torn")
    with run_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temp file left either
