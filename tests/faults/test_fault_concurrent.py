"""Two processes, one run directory: a second run or a `--resume` into the directory of a run that is
still training is refused, naming the holder, and leaves that run alone; once the holder is killed
(its lock file left behind), `--resume auto` takes the stale lock over and continues."""

from __future__ import annotations

import signal
from pathlib import Path

import fault_kit as kit
import pytest

from rectifiers.run_lock import LOCK_NAME


@pytest.mark.slow  # three CLI processes (about a minute on 2 busy cores); test_engine.py has the fast one
def test_a_second_run_or_resume_into_a_busy_directory_is_refused(tmp_path: Path):
    run = tmp_path / "run"
    args = kit.train_args(run, **{"train.save_every": "1", "train.epochs": "20"})  # outlives the checks
    first = kit.spawn(args, tmp_path, tmp_path / "first.log")
    try:
        kit.wait_for_step(first, run / "last.pt", 2)
        for extra in ([], ["--resume=auto"]):
            done = kit.cli([*args, *extra], tmp_path)
            assert done.returncode == 2, done.stderr[-3000:]
            assert f"is in use by another run (pid {first.pid} on host" in done.stderr, done.stderr[-3000:]
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]  # still training
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    kit.TALLY["faults injected"] += 1
    assert (run / LOCK_NAME).is_file()  # a kill -9 leaves it; its pid no longer runs
    step = kit.checkpoint_step(run / "last.pt")
    done = kit.cli([*args, "--resume=auto", f"--set=train.max_steps={step + 2}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert kit.checkpoint_step(run / "last.pt") == step + 2
    assert not (run / LOCK_NAME).exists()
    kit.TALLY["runs recovered"] += 1
