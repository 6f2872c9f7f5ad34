"""A checkpoint write that fails with ENOSPC stops the run with a clear error, leaves the previous
checkpoint intact and loadable, and the run continues from it with `--resume auto` once space is back.

The full disk is simulated inside the real `rectifiers train` process (launch.py, FAULT_ENOSPC_AFTER):
the failing `torch.save` writes half of its bytes into the temp file before the error, as a real full
disk does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fault_kit as kit
import pytest
import torch

from rectifiers.checkpoint.store import load_checkpoint

REFERENCE = {"train.save_every": "1", "train.epochs": "2"}


@pytest.mark.parametrize(
    ("saves_before", "failing", "kept_step"),
    [
        (8, "last.pt", 8),  # step 9's mid-epoch save fails; last.pt is still epoch 1's checkpoint
        pytest.param(15, "epoch_0002_step_000000016.pt", 15, marks=pytest.mark.slow),  # the epoch-end save
    ],
)
def test_full_disk_stops_cleanly_and_the_run_continues(
    tmp_path: Path, reference_run: Callable[..., Path], saves_before: int, failing: str, kept_step: int
):
    reference = reference_run(**REFERENCE)
    run = tmp_path / "run"
    done = kit.cli(
        kit.train_args(run, **REFERENCE), tmp_path, launcher=True, FAULT_ENOSPC_AFTER=str(saves_before)
    )
    kit.TALLY["faults injected"] += 1
    err = done.stderr.strip()
    assert done.returncode == 4, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "No space left on device" in err and failing in err, err
    assert f"the previous checkpoint {run / 'last.pt'} is intact" in err, err
    state = load_checkpoint(run / "last.pt")
    assert state["step"] == kept_step
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not [*run.glob(".*.tmp-*"), *(run / "checkpoints").glob(".*.tmp-*")], "half-written temp file left"
    resumed = kit.cli(kit.train_args(run, **REFERENCE, **{"train.resume": "auto"}), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    kit.assert_same_run(run, reference)
    kit.TALLY["runs recovered"] += 1
