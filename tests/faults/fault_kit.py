"""Shared pieces of the fault-injection suite: the CLI in a subprocess, run comparisons, the tally.

Every run here is the real `rectifiers train` command in its own process (`python -m rectifiers`, or
`launch.py` where a fault is injected from inside), one thread each, on the seconds-long fake-data
setting of `helpers.tiny_overrides`, deterministic and float32, so an interrupted-and-resumed run can
be compared bit for bit with an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from helpers import tiny_overrides
from rectifiers.checkpoint.store import load_checkpoint

LAUNCHER = Path(__file__).with_name("launch.py")

# Fields of a metrics.jsonl line that depend on the clock, not on the computation.
TIMING_FIELDS = ("images_per_s", "epoch_time_s", "time")

# What the suite did, printed at the end of the session by conftest.py.
TALLY: Counter[str] = Counter()


def train_args(out: Path, **extra: str) -> list[str]:
    """`rectifiers train` arguments of a deterministic tiny run into `out` (extra: config overrides)."""
    values = tiny_overrides(out, **{"train.deterministic": "true", **extra})
    return ["train", *(f"--set={key}={value}" for key, value in values.items())]


def subprocess_env(**extra: str) -> dict[str, str]:
    """One thread per process (same arithmetic in every run, and polite to a shared machine); the
    session's cache folder comes with the environment (tests/conftest.py), so decoded data sets and the
    fused PReLU kernel are built once and every process of a comparison runs the same kernel. `extra`
    adds variables (the FAULT_* ones of launch.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULT_")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update(extra)
    return env


def command(args: list[str], *, launcher: bool = False) -> list[str]:
    head = [sys.executable, str(LAUNCHER)] if launcher else [sys.executable, "-m", "rectifiers"]
    return [*head, *args]


def cli(
    args: list[str], tmp: Path, *, launcher: bool = False, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `rectifiers ARGS` (through launch.py when `launcher`, with FAULT_* variables in `env`)."""
    return subprocess.run(
        command(args, launcher=launcher),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=subprocess_env(**env),
        cwd=tmp,
    )


def spawn(args: list[str], tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as handle:
        return subprocess.Popen(command(args), stdout=handle, stderr=handle, env=subprocess_env(), cwd=tmp)


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint was saved at, or -1 when it is absent or unreadable right now."""
    try:
        return int(load_checkpoint(path)["step"])
    except (OSError, ValueError):
        return -1


def _kill(process: subprocess.Popen[bytes], what: str) -> None:
    if process.poll() is not None:
        raise AssertionError(f"the run ended (exit {process.returncode}) before the kill {what}")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    TALLY["faults injected"] += 1


def wait_for_step(process: subprocess.Popen[bytes], last: Path, step: int) -> None:
    """Return as soon as the checkpoint `last` holds `step` or later (or the process has ended)."""
    seen_mtime = None
    while process.poll() is None:
        try:
            mtime = last.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime is not None and mtime != seen_mtime:
            seen_mtime = mtime
            if checkpoint_step(last) >= step:
                return
        time.sleep(0.005)


def kill_after_step(process: subprocess.Popen[bytes], last: Path, step: int, delay: float) -> None:
    """SIGKILL `process` `delay` seconds after `last` first shows `step` or later. The delay moves the
    kill to a random point inside the work that follows (a forward or backward pass, a checkpoint or
    metrics write, the end-of-epoch validation)."""
    wait_for_step(process, last, step)
    time.sleep(delay)
    _kill(process, f"after step {step}")


def kill_after_metrics_line(process: subprocess.Popen[bytes], metrics: Path, lines: int) -> None:
    """SIGKILL `process` as soon as `metrics` holds `lines` lines: inside the window between an epoch's
    metrics line and its checkpoint."""
    while process.poll() is None:
        if metrics.exists() and metrics.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.002)
    _kill(process, f"after metrics line {lines}")


def kill_after_delay(process: subprocess.Popen[bytes], delay: float) -> None:
    """SIGKILL `process` `delay` seconds after it started (while it imports, loads or begins)."""
    time.sleep(delay)
    _kill(process, f"{delay:.2f} s after its start")


def weights(run_dir: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / name)["model"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors that differ in any bit (or exist in only one of the two)."""
    differ = sorted(set(a) ^ set(b))
    return differ + [key for key in sorted(set(a) & set(b)) if not torch.equal(a[key], b[key])]


def metric_lines(run_dir: Path, *, complete_only: bool = False) -> list[dict[str, Any]]:
    """metrics.jsonl without the timing fields. Every line must be complete JSON: a torn or duplicated
    line is exactly what the suite looks for, so nothing is skipped here, except with `complete_only`
    the text after the last newline (what a kill inside the write of a line leaves)."""
    path = run_dir / "metrics.jsonl"
    text = path.read_text() if path.exists() else ""
    if complete_only:
        text = text[: text.rfind("\n") + 1]
    return [
        {k: v for k, v in json.loads(line).items() if k not in TIMING_FIELDS} for line in text.splitlines()
    ]


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """`run_dir` ended exactly where `reference` did: weights bitwise, metrics without timings.
    A mismatch counts as data lost in the tally before the assertion fails."""
    differ = same_weights(weights(run_dir), weights(reference))
    differ += [
        f"best.pt: {k}" for k in same_weights(weights(run_dir, "best.pt"), weights(reference, "best.pt"))
    ]
    got, want = metric_lines(run_dir), metric_lines(reference)
    if differ or got != want:
        TALLY["data lost"] += 1
    assert not differ, f"weights differ from the uninterrupted run: {differ[:5]}"
    assert got == want, f"metrics differ from the uninterrupted run:\n{got}\n!=\n{want}"
