"""In a 2-process gloo run under torchrun, one rank raising stops both processes, with a
non-zero exit and the error message, in bounded time: the subprocess timeout is the bound, and a hang
(the other rank waiting forever in a collective) fails the test when it expires.

The error is injected inside `rectifiers train` by launch.py (FAULT_RAISE_AT_STEP, FAULT_RAISE_RANK).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fault_kit as kit
import pytest

from helpers import free_port

pytestmark = pytest.mark.distributed

BOUND_S = 180  # far above a normal stop (seconds), far below the 600 s collective timeout a hang would hit


@pytest.mark.parametrize(
    ("rank", "step"),
    [(1, 3), pytest.param(0, 3, marks=pytest.mark.slow), pytest.param(1, 1, marks=pytest.mark.slow)],
)
def test_one_rank_raising_stops_both(tmp_path: Path, rank: int, step: int):
    run = tmp_path / "run"
    command = _two_ranks(*kit.train_args(run, **{"train.epochs": "2"}))
    env = kit.subprocess_env(FAULT_RAISE_AT_STEP=str(step), FAULT_RAISE_RANK=str(rank))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BOUND_S, env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the 2-process run hung for {BOUND_S} s after rank {rank} raised:\n{err.stderr}")
    kit.TALLY["faults injected"] += 1
    assert done.returncode != 0
    assert f"RuntimeError: injected fault on rank {rank} at step {step}" in done.stderr, done.stderr[-4000:]
    assert not (run / "metrics.jsonl").exists()  # stopped inside epoch 1, before any epoch was logged


def test_resume_without_shared_storage_fails_loudly_on_every_rank(tmp_path: Path):
    """Rank 0 picks the checkpoint; a rank that cannot read it (here: its node has its own, empty run
    directory) stops the run with a message naming it, instead of training from epoch 0 beside rank 0."""
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    node0.mkdir()
    node1.mkdir()
    first = kit.cli(kit.train_args(Path("run"), **{"train.epochs": "1"}), node0)
    assert first.returncode == 0, first.stderr[-3000:]

    def resume(**fault: str) -> subprocess.CompletedProcess[str]:
        command = _two_ranks(*kit.train_args(Path("run"), **{"train.epochs": "2", "train.resume": "auto"}))
        env = kit.subprocess_env(**fault)
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=BOUND_S, env=env, cwd=node0
            )
        except subprocess.TimeoutExpired as err:
            pytest.fail(f"the 2-process resume hung for {BOUND_S} s:\n{err.stderr}")

    done = resume(FAULT_RANK_CWD=f"1:{node1}")
    kit.TALLY["faults injected"] += 1
    assert done.returncode != 0
    assert "rank 1 cannot load the checkpoint rank 0 resumes from" in done.stderr, done.stderr[-4000:]
    assert "storage that every node shares" in done.stderr
    assert not (node1 / "run").exists() or not any((node1 / "run").iterdir())
    assert [line["epoch"] for line in kit.metric_lines(node0 / "run")] == [1]  # nothing trained
    # The same resume with the run directory shared by both ranks goes on from epoch 1.
    done = resume()
    assert done.returncode == 0, done.stderr[-4000:]
    kit.TALLY["runs recovered"] += 1
    assert [line["epoch"] for line in kit.metric_lines(node0 / "run")] == [1, 2]


def _two_ranks(*train_args: str) -> list[str]:
    """The fault launcher under torchrun, two processes on this node."""
    torchrun = ["-m", "torch.distributed.run", "--nproc-per-node=2", "--nnodes=1"]
    return [sys.executable, *torchrun, f"--master-port={free_port()}", str(kit.LAUNCHER), *train_args]
