"""`rectifiers reproduce` keeps its training runs: a second invocation reuses the finished ones,
continues an interrupted one from its checkpoint, refuses runs of other settings, and `--fresh`
starts over. Tables name the revision of their runs; Table 1 reads Table 2's runs."""

from __future__ import annotations

import json

import pytest

import rectifiers.engine
from rectifiers.cli import main
from rectifiers.experiments import run_experiment
from rectifiers.experiments.context import Context
from rectifiers.experiments.provenance import revision
from rectifiers.experiments.recipe import SMOKE_DATA, SMOKE_MODEL
from rectifiers.experiments.runs import RunNotFinished, runs_made_with, train

# 64 fake images, a quarter held out: 48 to train on, one full batch of 32 per epoch
RUN = {"data.val_fraction": 0.25, "model.name": "net14", "model.act": "relu", "train.epochs": 3}


def _ctx(tmp_path, fresh=False, said=None):
    return Context(
        name="t",
        preset="smoke",
        settings={"overrides": SMOKE_MODEL},
        out=tmp_path,
        command="",
        data=SMOKE_DATA,
        say=(said.append if said is not None else lambda text: None),
        fresh=fresh,
    )


def _no_training(*args, **kwargs):
    raise AssertionError("fit was called: a finished run was trained again")


def test_a_finished_run_is_reused(tmp_path, monkeypatch):
    first = train(_ctx(tmp_path), tmp_path / "run", RUN)
    assert first["result"]["status"] == "completed" and len(first["metrics"]) == 3
    monkeypatch.setattr(rectifiers.engine, "fit", _no_training)
    said = []
    again = train(_ctx(tmp_path, said=said), tmp_path / "run", RUN)
    assert again["metrics"] == first["metrics"] and again["revision"] == first["revision"] == revision()
    assert any("reusing the finished run" in line for line in said)


def test_an_interrupted_run_continues_from_its_checkpoint(tmp_path):
    with pytest.raises(RunNotFinished, match="run the same command again"):
        train(_ctx(tmp_path), tmp_path / "run", {**RUN, "train.max_steps": 1})  # stops after epoch 1
    (epoch1,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    done = train(_ctx(tmp_path), tmp_path / "run", RUN)
    assert [m["epoch"] for m in done["metrics"]] == [1, 2, 3]
    assert done["metrics"][0] == epoch1  # epoch 1 was not trained again
    assert done["result"]["step"] == 3 and done["result"]["test_images"] == 32


def test_runs_of_other_settings_are_refused_and_fresh_starts_over(tmp_path):
    train(_ctx(tmp_path), tmp_path / "run", RUN)
    stamp = (tmp_path / "run" / "finished.json").stat().st_mtime_ns
    with pytest.raises(ValueError, match=r"other settings \(train.epochs\).*--fresh"):
        train(_ctx(tmp_path), tmp_path / "run", {**RUN, "train.epochs": 2})
    redone = train(_ctx(tmp_path, fresh=True), tmp_path / "run", {**RUN, "train.epochs": 2})
    assert len(redone["metrics"]) == 2 and (tmp_path / "run" / "finished.json").stat().st_mtime_ns != stamp


def test_table_1_reads_table_2s_runs_and_states_their_revision(tmp_path, monkeypatch, capsys):
    assert main(["reproduce", "relu-vs-prelu", "--preset", "smoke", "--out", str(tmp_path)]) == 0
    assert f"finished at revision `{revision()}`" in (tmp_path / "relu-vs-prelu" / "table.md").read_text()
    monkeypatch.setattr(rectifiers.engine, "fit", _no_training)
    assert main(["reproduce", "coefficients", "--preset", "smoke", "--out", str(tmp_path)]) == 0
    assert "reusing the finished run prelu-seed0" in capsys.readouterr().err
    record = json.loads((tmp_path / "coefficients" / "results.json").read_text())
    assert record["results"]["run_dirs"]["prelu"] == [
        str(tmp_path / "relu-vs-prelu" / "runs" / "smoke" / "prelu-seed0")
    ]
    course = record["results"]["slope_courses"]["prelu"][0]
    assert course["steps"] == [1] and set(course["slopes"]) >= {"conv1", "conv3_6", "fc2"}
    assert (tmp_path / "coefficients" / "coefficients.png").stat().st_size > 0
    run_experiment("relu-vs-prelu", "smoke", out=tmp_path)  # reused: fit would raise


def test_the_setup_names_the_precision_each_run_trained_in(tmp_path):
    # train.amp = auto may pick bf16 for one arm and float32 for another (a calibration of each
    # model); a table must not hide that its arms differ in more than the compared setting.
    fp32 = train(_ctx(tmp_path), tmp_path / "a", {**RUN, "train.amp": "off"})
    bf16 = train(_ctx(tmp_path), tmp_path / "b", {**RUN, "train.amp": "bf16", "model.act": "prelu"})
    assert "All 2 runs trained in `float32`." in runs_made_with([fp32, fp32])
    mixed = runs_made_with([fp32, bf16])
    assert "not all in one precision" in mixed and "`float32`: a" in mixed and "`bfloat16`: b" in mixed, mixed
