from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
import torch

from rectifiers.checkpoint.store import (
    FORMAT,
    CheckpointError,
    epoch_checkpoint_name,
    find_resumable,
    load_checkpoint,
    prune_checkpoints,
    resume_candidates,
    save_checkpoint,
)


def _state(step: int = 1) -> dict:
    return {
        "format": FORMAT,
        "model": {"w": torch.ones(3)},
        "epoch": 1,
        "step": step,
        "config": {},
        "model_args": {"name": "x"},
        "classes": ["a", "b"],
    }


def test_round_trip(tmp_path: Path):
    path = save_checkpoint(_state(), tmp_path / "a" / "last.pt")
    state = load_checkpoint(path)
    assert torch.equal(state["model"]["w"], torch.ones(3)) and state["classes"] == ["a", "b"]
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left


def test_missing_truncated_and_random_bytes(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")
    path = save_checkpoint(_state(), tmp_path / "ok.pt")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="noise.pt"):
        load_checkpoint(noise)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)


def test_missing_keys_and_foreign_files(tmp_path: Path):
    partial = _state()
    del partial["model_args"]
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="missing keys: model_args"):
        load_checkpoint(tmp_path / "partial.pt")
    torch.save(torch.ones(2), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not a rectifiers checkpoint"):
        load_checkpoint(tmp_path / "tensor.pt")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_code_payload_is_refused_and_not_run(tmp_path: Path):
    marker = tmp_path / "pwned"
    state = _state()
    state["extra"] = _Payload(marker)
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # a raw pickle (not a torch zip) with the same payload
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_failed_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = save_checkpoint(_state(step=1), tmp_path / "last.pt")

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="could not write checkpoint"):
        save_checkpoint(_state(step=2), path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_resume_skips_corrupt_newest(tmp_path: Path):
    ckpts = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        save_checkpoint(_state(step), ckpts / epoch_checkpoint_name(step // 10, step))
    (tmp_path / "last.pt").write_bytes(b"garbage")
    newest = ckpts / epoch_checkpoint_name(3, 30)
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="skipping unusable checkpoint"):
        found = find_resumable(tmp_path)
    assert found is not None and found[1]["step"] == 20
    prune_checkpoints(tmp_path, keep_last=1)
    assert [p.name for p in resume_candidates(tmp_path)] == ["last.pt", epoch_checkpoint_name(3, 30)]


def test_find_resumable_empty_dir(tmp_path: Path):
    assert find_resumable(tmp_path) is None
