"""`atomic_file.replacing`: the target is the old content or the whole new one, and no temp name stays."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rectifiers.atomic_file import remove_stale_temp_files, replacing


@pytest.mark.parametrize("durable", [False, True])
def test_a_finished_block_replaces_the_file(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with replacing(target, durable=durable) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible before the block ends
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_failing_block_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(OSError, match="disk full"), replacing(target) as tmp:
        tmp.write_text("half")
        raise OSError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_folder_is_replaced_whole_and_a_failed_one_removed(tmp_path: Path) -> None:
    target = tmp_path / "folder"
    with replacing(target) as tmp:
        (tmp / "sub").mkdir(parents=True)
        (tmp / "sub" / "x").write_text("1")
    assert (target / "sub" / "x").read_text() == "1"
    with pytest.raises(RuntimeError), replacing(tmp_path / "other") as tmp:
        (tmp / "y").mkdir(parents=True)
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_a_temp_left_by_a_killed_writer_with_this_pid_is_cleared_first(tmp_path: Path) -> None:
    stale = tmp_path / f".b.txt.tmp-{os.getpid()}"
    stale.write_text("stale")
    with replacing(tmp_path / "b.txt") as tmp:
        assert tmp == stale and not tmp.exists()
        tmp.write_text("fresh")
    assert (tmp_path / "b.txt").read_text() == "fresh"


def test_only_the_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".last.pt.tmp-999999999"  # above any pid_max: no such process
    mine = tmp_path / f".best.pt.tmp-{os.getpid()}"
    other = tmp_path / ".notes.tmp-abc"
    for path in (dead, mine, other):
        path.write_text("partial")
    assert remove_stale_temp_files(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name])
