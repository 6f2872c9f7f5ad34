"""Issue 8.6: in a 2-process gloo run under torchrun, one rank raising stops both processes, with a
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
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        "--nnodes=1",
        f"--master-port={free_port()}",
        str(kit.LAUNCHER),
        *kit.train_args(run, **{"train.epochs": "2"}),
    ]
    env = kit.subprocess_env(tmp_path, FAULT_RAISE_AT_STEP=str(step), FAULT_RAISE_RANK=str(rank))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BOUND_S, env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the 2-process run hung for {BOUND_S} s after rank {rank} raised:\n{err.stderr}")
    kit.TALLY["faults injected"] += 1
    assert done.returncode != 0
    assert f"RuntimeError: injected fault on rank {rank} at step {step}" in done.stderr, done.stderr[-4000:]
    assert not (run / "metrics.jsonl").exists()  # stopped inside epoch 1, before any epoch was logged
