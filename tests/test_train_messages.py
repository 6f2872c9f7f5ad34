"""What `rectifiers train` tells its user: the run header, a smoke run's output, resume messages."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import torch

from helpers import tiny_overrides
from rectifiers.cli import main


def _train(out: Path, capsys: pytest.CaptureFixture[str], **extra: str) -> tuple[int, str]:
    """`rectifiers train` on the tiny fake set (not quiet); returns the exit code and stdout + stderr."""
    values = tiny_overrides(out, **{"train.quiet": "false", **extra})
    argv = ["train", "--config", "default"]
    for key, value in values.items():
        argv += ["--set", f"{key}={value}"]
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_max_steps_writes_a_partial_epoch_line_and_the_end_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code, text = _train(out, capsys, **{"train.max_steps": "3"})  # 256 images / 32: 8 batches an epoch
    assert code == 0
    (line,) = _lines(out)
    assert line["epoch"] == 1 and line["partial"] is True and line["batch"] == 3 and line["batches"] == 8
    assert line["step"] == 3 and 0.0 <= line["val_top1_err"] <= 1.0 and line["images_per_s"] > 0
    assert re.search(r"epoch 1/2 \(batch 3 of 8\)", text)
    assert re.search(r"done: stopped at train\.max_steps = 3 \(epoch 1, batch 3 of 8\)", text)
    # The resumed run trains that epoch in full and replaces the partial line with the whole epoch's.
    code, _ = _train(out, capsys, **{"train.resume": "auto"})
    assert code == 0
    assert [(r["epoch"], r.get("partial", False)) for r in _lines(out)] == [(1, False), (2, False)]


def _stop_after(monkeypatch: pytest.MonkeyPatch, steps: int) -> None:
    """A SIGTERM that arrives after `steps` optimizer steps (what `kill` does to a real run)."""
    from rectifiers.engine import Trainer

    monkeypatch.setattr(Trainer, "_stop_requested", lambda self: self.step >= steps)


@pytest.mark.parametrize("stop", [5, 8])  # inside epoch 1, and after its last batch
def test_stop_and_resume_messages_use_one_numbering(tmp_path: Path, capsys, monkeypatch, stop: int) -> None:
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _stop_after(patch, stop)
        code, text = _train(out, capsys)
    assert code == 128 + 15
    saved = "at epoch 1, batch 5, step 5" if stop == 5 else "after epoch 1, step 8"
    assert f"checkpoint saved {saved};" in text
    code, text = _train(out, capsys, **{"train.resume": "auto"})
    assert code == 0
    assert re.search(rf"resuming from \S+\.pt {saved}\n", text), text
    speeds = [float(s) for s in re.findall(r"epoch \d/2 .* (\d+) img/s", text)]
    assert len(speeds) == (2 if stop == 5 else 1) and min(speeds) > 0, text  # no epoch of zero batches


def test_resuming_a_finished_run_says_it_is_complete(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert _train(out, capsys, **{"train.epochs": "1"})[0] == 0
    code, text = _train(out, capsys, **{"train.epochs": "1", "train.resume": "auto"})
    assert code == 0
    assert re.search(r"resuming from \S+ after epoch 1, step 8", text), text
    assert "already complete: 1 of 1 epochs done; nothing to train (raise --epochs to train further)" in text
    assert [r["epoch"] for r in _lines(out)] == [1]


def test_the_run_header_says_what_runs_and_lands_in_run_txt(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code, text = _train(out, capsys, **{"train.max_steps": "1", "train.amp": "off"})
    assert code == 0
    expected = [
        r"model: net14 \(prelu, small stem, width 0\.125\), [\d,]+ parameters",
        r"data: fake:\S+: 256 train / 64 val images, 4 classes \(class0, class1, class2, class3\), "
        r"1 channel\(s\), 16x16 px",
        r"device: cpu, \d+ threads; batch 32, lr 0\.01, 2 epochs",
        r"precision: float32 \(train\.amp = off\)",
        r"fused PReLU kernel: (ready|unavailable .*)",
    ]
    header = (out / "run.txt").read_text()
    for pattern in expected:
        assert re.search(pattern, text), (pattern, text)
        assert re.search(pattern, header), (pattern, header)
    assert text.index("model: net14") < text.index("epoch 1/2")


def test_a_first_use_kernel_build_is_announced(tmp_path: Path, monkeypatch) -> None:
    from rectifiers import prelu_kernel
    from rectifiers.models import create_model
    from rectifiers.run_log import prelu_kernel_status

    model = create_model("net14", act="prelu", stem="small", width=0.125, fc_width=16, num_classes=2)
    said: list[str] = []
    monkeypatch.setenv("RECTIFIERS_CACHE", str(tmp_path))  # an empty kernel cache: the first use
    # Stands in for the ~10 s build, as a fresh process's load (nothing loaded yet).
    monkeypatch.setattr(prelu_kernel, "load", functools.cache(lambda: None))
    prelu_kernel_status(model, torch.device("cpu"), said.append)
    assert said == ["building the fused PReLU kernel (first use, ~20 s)"]
    relu = create_model("net14", act="relu", stem="small", width=0.125, fc_width=16, num_classes=2)
    assert prelu_kernel_status(relu, torch.device("cpu"), said.append).startswith("not used")
    assert len(said) == 1
