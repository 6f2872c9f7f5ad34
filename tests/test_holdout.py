"""The validation split held out of train (`data.val_fraction`): seeded, class-balanced, disjoint from
the images trained on; the data set's own val/test split evaluated once, at the end."""

from __future__ import annotations

import json
import warnings
import zipfile

import pytest
import torch

from helpers import tiny_overrides
from rectifiers.config import load_config
from rectifiers.data import open_dataset
from rectifiers.engine import fit
from rectifiers.holdout import hold_out, val_is_test_split

SPEC = "fake:n=256,size=16,classes=4,channels=1,seed=1"


def test_hold_out_is_class_balanced_disjoint_and_seeded():
    full = open_dataset(SPEC, "train")
    train, val = hold_out(full, 0.25)
    assert len(train) + len(val) == len(full)
    assert torch.bincount(val.targets).tolist() == [16, 16, 16, 16]
    # disjoint, and together every image once: compare the pixel rows
    rows = {bytes(x.numpy()) for x in torch.cat([train.images, val.images])}
    assert len(rows) == len(full)
    again = hold_out(full, 0.25)[1]
    assert torch.equal(again.images, val.images)
    other = hold_out(full, 0.25, seed=1)[1]
    assert not torch.equal(other.images, val.images)
    with pytest.raises(ValueError, match="data.val_fraction"):
        hold_out(full, 1.0)


def test_val_fraction_trains_on_the_rest_and_reports_the_test_split_once(tmp_path):
    values = tiny_overrides(tmp_path / "run", **{"data.val_fraction": "0.25"})
    result = fit(load_config(None, values))
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["val_fraction"] == 0.25
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(m["val_images"] == 64 for m in lines)  # the held-out quarter of 256, not the val split
    test = open_dataset(SPEC, "val")
    assert result["test_images"] == len(test)
    assert 0 <= result["test_top1_err"] <= 1 and "test_top5_err" in result and "test_loss" in result
    assert (
        json.loads((tmp_path / "run" / "test.json").read_text())["test_top1_err"] == result["test_top1_err"]
    )


def test_without_val_fraction_there_is_no_test_error(tmp_path):
    result = fit(load_config(None, tiny_overrides(tmp_path / "run")))
    assert "test_top1_err" not in result


def _folder_zip(path, splits):
    with zipfile.ZipFile(path, "w") as z:
        for split in splits:
            z.writestr(f"top/{split}/a/x.png", b"")
    return path


def test_val_is_test_split(tmp_path):
    assert val_is_test_split("idx:/somewhere")
    assert val_is_test_split(f"folder:{_folder_zip(tmp_path / 'a.zip', ['train', 'test'])}")
    assert not val_is_test_split(f"folder:{_folder_zip(tmp_path / 'b.zip', ['train', 'val', 'test'])}")
    assert not val_is_test_split(SPEC) and not val_is_test_split("mnist5k")


def test_a_run_validating_on_a_test_split_warns(tmp_path, monkeypatch):
    import rectifiers.engine as engine

    monkeypatch.setattr(engine, "val_is_test_split", lambda spec: True)
    with pytest.warns(UserWarning, match="test split.*data.val_fraction"):
        fit(load_config(None, tiny_overrides(tmp_path / "run", **{"train.epochs": "1"})))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit(
            load_config(
                None, tiny_overrides(tmp_path / "held", **{"train.epochs": "1", "data.val_fraction": "0.1"})
            )
        )


def test_hold_out_of_image_files_keeps_them_lazy(tmp_path):
    from PIL import Image

    from rectifiers.data import FileDataset

    for cls in ("a", "b"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "train" / cls / f"{i}.png")
    full = open_dataset(f"folder:{tmp_path}", "train", memory_budget=0, cache=False)
    assert isinstance(full, FileDataset)
    train, val = hold_out(full, 0.2)
    assert isinstance(train, FileDataset) and isinstance(val, FileDataset)
    assert torch.bincount(val.targets).tolist() == [1, 1] and len(train) == 8
    assert sorted([*train.names, *val.names]) == sorted(full.names)
    assert val[0][0].shape == (3, 8, 8)
