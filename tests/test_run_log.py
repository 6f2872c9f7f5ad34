"""RunLog: metrics lines on resume, the per-epoch record, other ranks writing nothing."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import tiny_overrides
from rectifiers.config import load_config
from rectifiers.run_log import RunLog


def _metrics(epoch: int) -> dict:
    return {
        "epoch": epoch,
        "step": 4 * epoch,
        "lr": 0.01,
        "train_loss": 1.0 / epoch,
        "val_loss": 1.1 / epoch,
        "val_top1_err": 0.5,
        "val_top5_err": 0.1,
        "images_per_s": 100.0,
    }


def _log(tmp_path: Path, is_main: bool = True) -> RunLog:
    return RunLog(load_config(None, tiny_overrides(tmp_path / "run")), is_main=is_main)


def test_log_epoch_appends_a_line_and_redraws_the_curves(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.run_dir.mkdir(parents=True)
    for epoch in (1, 2):
        log.log_epoch(_metrics(epoch))
    lines = [json.loads(x) for x in log.metrics_path.read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert (log.run_dir / "curves.png").stat().st_size > 0


def test_trim_keeps_the_resumed_epochs_and_drops_a_torn_line(tmp_path: Path, capsys) -> None:
    log = _log(tmp_path)
    log.run_dir.mkdir(parents=True)
    whole = "".join(json.dumps(_metrics(e)) + "\n" for e in (1, 2, 3))
    log.metrics_path.write_text(whole + '{"epoch": 4, "st')  # killed while writing epoch 4's line
    log.trim_metrics(2)
    assert [json.loads(x)["epoch"] for x in log.metrics_path.read_text().splitlines()] == [1, 2]
    assert not list(log.run_dir.glob(".*.tmp*"))


def test_trim_leaves_an_intact_file_untouched(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.run_dir.mkdir(parents=True)
    whole = "".join(json.dumps(_metrics(e)) + "\n" for e in (1, 2))
    log.metrics_path.write_text(whole)
    before = log.metrics_path.stat().st_mtime_ns
    log.trim_metrics(2)
    assert log.metrics_path.read_text() == whole
    assert log.metrics_path.stat().st_mtime_ns == before


def test_other_ranks_write_nothing(tmp_path: Path) -> None:
    log = _log(tmp_path, is_main=False)
    log.write_run_files({"a": 1}, {"precision": "float32"}, "report")
    log.log_epoch(_metrics(1))
    with log.tensorboard() as writer:
        assert writer is None
    assert not log.run_dir.exists()
