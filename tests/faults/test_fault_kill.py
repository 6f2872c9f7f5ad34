"""`kill -9` at random points; `--resume auto` each time; the end is bitwise the uninterrupted run.

The run checkpoints after every step (`train.save_every=1`), so a kill can land anywhere: inside a
forward or backward pass, in the middle of a checkpoint write, at validation, between an epoch's
metrics line and its checkpoint, or between the checkpoint and the links to it. The kill points are
drawn from a seeded generator, of two kinds: "a random delay after step k is checkpointed" and "the
moment epoch e's metrics line appears" (the window in which the line exists and its checkpoint does
not yet). A point that an earlier kill has already passed moves to the next reachable one.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from pathlib import Path

import fault_kit as kit
import pytest

from rectifiers.checkpoint.store import find_resumable

STEPS_PER_EPOCH = 8  # tiny_overrides: 256 fake training images, batch 32


def _kill_points(rng: random.Random, kills: int, epochs: int) -> list[tuple[str, int]]:
    """`kills` points in the order the run reaches them: ("step", k) or ("line", e); both kinds
    are always among the first two, the rest are a step with probability 0.7."""
    points = []
    for i in range(kills):
        if i == 0 or (i > 1 and rng.random() < 0.3):
            epoch = rng.randint(1, epochs)
            points.append((epoch * STEPS_PER_EPOCH + 0.5, "line", epoch))
        else:
            step = rng.randint(1, epochs * STEPS_PER_EPOCH - 2)
            points.append((step, "step", step))
    return [(kind, target) for _, kind, target in sorted(points)]


def _check_after_kill(run: Path, reference: Path) -> None:
    """What a kill may leave: complete metrics lines that are the reference's (plus a torn last line
    at most), and a checkpoint that loads once any has been written."""
    got, want = kit.metric_lines(run, complete_only=True), kit.metric_lines(reference)
    assert got == want[: len(got)], f"after a kill, metrics.jsonl is not a prefix of the reference: {got}"
    if (run / "last.pt").exists():
        assert find_resumable(run) is not None, f"no loadable checkpoint left in {run}"


def kill_and_resume(tmp: Path, reference: Path, kills: int, epochs: int, seed: int) -> None:
    """Kill a run `kills` times, resume it to the end, compare with `reference`. What each kill left is
    printed (shown with `pytest -s` or on failure)."""
    rng = random.Random(seed)
    run = tmp / "run"
    args = kit.train_args(
        run, **{"train.save_every": "1", "train.epochs": str(epochs)}, **{"train.resume": "auto"}
    )
    last_step = epochs * STEPS_PER_EPOCH
    step, lines = 0, 0  # where the run stands: its newest checkpoint's step, its metrics lines
    for kind, target in _kill_points(rng, kills, epochs):
        if kind == "step" and max(target, step + 1) > last_step - 2:
            kind, target = "line", epochs  # too close to the end for a step kill: the last epoch's window
        target = max(target, (step if kind == "step" else lines) + 1)
        if kind == "line" and target > epochs:
            kind = "start"  # nothing left to interrupt but the start-up
        process = kit.spawn(args, tmp, tmp / "runs.log")
        if kind == "step":
            kit.kill_after_step(process, run / "last.pt", target, delay=rng.uniform(0.0, 0.2))
        elif kind == "line":
            kit.kill_after_metrics_line(process, run / "metrics.jsonl", target)
        else:
            kit.kill_after_delay(process, delay=rng.uniform(0.1, 0.6))
        _check_after_kill(run, reference)
        step = kit.checkpoint_step(run / "last.pt")
        lines = len(kit.metric_lines(run, complete_only=True))
        print(f"kill at {kind} {target}: last.pt at step {step}, {lines} metrics line(s)")
    done = kit.cli(args, tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    kit.assert_same_run(run, reference)
    assert not [*run.glob(".*.tmp-*"), *(run / "checkpoints").glob(".*.tmp-*")], "temp files left behind"
    kit.TALLY["runs recovered"] += 1


def test_two_random_kills_then_resume_equal_an_uninterrupted_run(
    tmp_path: Path, reference_run: Callable[..., Path]
):
    reference = reference_run(**{"train.save_every": "1", "train.epochs": "2"})
    kill_and_resume(tmp_path, reference, kills=2, epochs=2, seed=8)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_ten_random_kills_then_resume_equal_an_uninterrupted_run(
    tmp_path: Path, reference_run: Callable[..., Path], seed: int
):
    reference = reference_run(**{"train.save_every": "1", "train.epochs": "4"})
    kill_and_resume(tmp_path, reference, kills=10, epochs=4, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_exit_and_resume_exactly(
    tmp_path: Path, reference_run: Callable[..., Path], signum: signal.Signals
):
    reference = reference_run(**{"train.save_every": "1", "train.epochs": "2"})
    run = tmp_path / "run"
    args = kit.train_args(run, **{"train.save_every": "1", "train.epochs": "2", "train.resume": "auto"})
    process = kit.spawn([*args, "--set=train.quiet=false"], tmp_path, tmp_path / "stop.log")
    # The signal goes in while a step runs; the loop stops after that step (or the next), saving first.
    kit.wait_for_step(process, run / "last.pt", random.Random(signum).randint(2, 12))
    process.send_signal(signum)
    assert process.wait(timeout=120) == 128 + signum, (tmp_path / "stop.log").read_text()[-3000:]
    kit.TALLY["faults injected"] += 1
    log = (tmp_path / "stop.log").read_text()
    stopped_at = kit.checkpoint_step(run / "last.pt")
    assert f"stopped by {signal.Signals(signum).name}: checkpoint saved" in log, log[-3000:]
    assert f"step {stopped_at}; continue with --resume auto" in log and stopped_at < 16, log[-3000:]
    done = kit.cli(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    kit.assert_same_run(run, reference)
    kit.TALLY["runs recovered"] += 1
