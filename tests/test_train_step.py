"""The trainer's per-step bookkeeping stays on the device and is read back every few steps
(`rectifiers.train_step`), yet a non-finite loss is still named by its own step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import tiny_overrides
from rectifiers.config import load_config
from rectifiers.engine import Trainer, fit
from rectifiers.train_step import StepTally


def _add_step(tally: StepTally, loss: float, correct_first: bool = True) -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    targets = torch.tensor([0 if correct_first else 1, 0])  # the second sample is always wrong
    tally.add(torch.tensor(loss), logits, targets)


def test_reading_sums_the_steps_and_starts_afresh() -> None:
    tally = StepTally(torch.device("cpu"))
    _add_step(tally, 1.0)
    _add_step(tally, 3.0, correct_first=False)
    reading = tally.read(stop=False, reduce=lambda t: t)
    assert reading.first_non_finite is None and not reading.stop
    assert reading.sums.tolist() == [2 * 1.0 + 2 * 3.0, 1.0, 4.0]
    assert len(tally) == 0 and tally.sums.tolist() == [0.0, 0.0, 0.0]
    assert tally.read(stop=True, reduce=lambda t: t).stop


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_the_first_non_finite_step_is_found_with_its_value(bad: float) -> None:
    tally = StepTally(torch.device("cpu"))
    for loss in (1.0, 2.0, bad, float("nan")):
        _add_step(tally, loss)
    reading = tally.read(stop=False, reduce=lambda t: t)
    assert reading.first_non_finite == 2
    assert str(reading.value) == str(bad)


def test_another_ranks_bad_step_is_named_on_every_rank() -> None:
    tally = StepTally(torch.device("cpu"))
    for loss in (1.0, 2.0, 3.0):
        _add_step(tally, loss)

    def other_rank_bad_at_step_1_and_stopping(flags: torch.Tensor) -> torch.Tensor:
        return flags + torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=flags.dtype)

    reading = tally.read(stop=False, reduce=other_rank_bad_at_step_1_and_stopping)
    assert reading.first_non_finite == 1 and reading.stop and reading.value == 2.0


def test_an_epoch_reads_back_once_per_eight_steps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Host reads (`.cpu()`, `.item()`, `bool()`) inside training epochs: 3 per step before, now one
    tally read per 8 steps plus the epoch's total."""
    reads = {"n": 0, "training": False}
    for name in ("cpu", "item", "__bool__"):
        real = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: object, _real=real, **kwargs: object) -> object:
            reads["n"] += reads["training"]
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    real_epoch = Trainer._train_epoch

    def epoch(self: Trainer) -> object:
        reads["training"] = True
        try:
            return real_epoch(self)
        finally:
            reads["training"] = False

    monkeypatch.setattr(Trainer, "_train_epoch", epoch)
    # 256 images, batch 32: 8 steps per epoch
    fit(load_config(None, tiny_overrides(tmp_path / "run", **{"train.amp": "off"})))
    assert reads["n"] <= 2 * 2, reads
