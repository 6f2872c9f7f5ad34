"""A loss that turns NaN/inf mid-run, and a diverging learning rate, stop `rectifiers train`
with exit code 3 and one line naming the epoch and step, keeping the last good checkpoint.

The poisoned loss is injected inside the real process (launch.py, FAULT_LOSS_AT_STEP): a transient
fault, so the run then continues from the kept checkpoint to exactly the uninterrupted result.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import fault_kit as kit
import pytest
import torch

from rectifiers.checkpoint.store import load_checkpoint

REFERENCE = {"train.save_every": "1", "train.epochs": "2"}


def _finite(path: Path) -> bool:
    state = load_checkpoint(path)["model"]
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize(
    ("value", "step", "epoch"),
    [
        ("nan", 10, 2),
        pytest.param("inf", 3, 1, marks=pytest.mark.slow),
        pytest.param("-inf", 8, 1, marks=pytest.mark.slow),
    ],
)
def test_non_finite_loss_stops_with_epoch_and_step_and_the_run_continues(
    tmp_path: Path, reference_run: Callable[..., Path], value: str, step: int, epoch: int
):
    reference = reference_run(**REFERENCE)
    run = tmp_path / "run"
    done = kit.cli(
        kit.train_args(run, **REFERENCE),
        tmp_path,
        launcher=True,
        FAULT_LOSS_AT_STEP=str(step),
        FAULT_LOSS_VALUE=value,
    )
    kit.TALLY["faults injected"] += 1
    err = done.stderr.strip()
    assert done.returncode == 3, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"non-finite loss ({value}) at epoch {epoch}, step {step}" in err, err
    assert f"last good checkpoint kept: {run / 'last.pt'}" in err, err
    state = load_checkpoint(run / "last.pt")
    assert state["step"] == step - 1 and _finite(run / "last.pt")
    assert len(kit.metric_lines(run)) == epoch - 1  # no line for the epoch that failed
    resumed = kit.cli(kit.train_args(run, **REFERENCE, **{"train.resume": "auto"}), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    kit.assert_same_run(run, reference)
    kit.TALLY["runs recovered"] += 1


def test_diverging_learning_rate_is_reported_the_same_way(tmp_path: Path):
    run = tmp_path / "run"
    done = kit.cli(kit.train_args(run, **{"optim.lr": "1e8", "train.save_every": "1"}), tmp_path)
    kit.TALLY["faults injected"] += 1
    err = done.stderr.strip()
    assert done.returncode == 3, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    found = re.search(
        r"non-finite loss \((nan|inf|-inf)\) at epoch (\d+), step (\d+): the learning rate \(1e\+08\)", err
    )
    assert found, err
    step = int(found.group(3))
    assert step >= 2  # step 1 runs on the initial weights; the divergence shows after an update
    assert f"last good checkpoint kept: {run / 'last.pt'}" in err, err
    assert load_checkpoint(run / "last.pt")["step"] == step - 1 and _finite(run / "last.pt")
