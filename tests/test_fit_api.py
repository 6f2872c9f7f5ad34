"""`rectifiers.fit(config, model, train_set, val_set)`: a model and data sets of the user's own, not from
the registry or a data spec, train with the paper's recipe, checkpoints and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import rectifiers
from helpers import tiny_overrides
from rectifiers.activations import PReLU
from rectifiers.checkpoint.inference import load_model
from rectifiers.checkpoint.store import CheckpointError, load_checkpoint
from rectifiers.config import load_config
from rectifiers.data import InMemoryDataset


class TinyNet(nn.Module):
    """Not from the registry: a conv, a PReLU, global pooling and a classifier."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.act = PReLU(8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean((2, 3)))


def _datasets(seed: int = 0) -> tuple[InMemoryDataset, InMemoryDataset]:
    """Three classes told apart by brightness, so a few epochs learn them."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in (96, 48):
        targets = torch.randint(0, 3, (n,), generator=gen)
        noise = torch.randint(0, 40, (n, 1, 16, 16), generator=gen)
        images = (targets.view(-1, 1, 1, 1) * 100 + noise).to(torch.uint8)
        out.append(InMemoryDataset(images, targets, ["dark", "mid", "bright"], source="test"))
    return out[0], out[1]


def _config(out: Path, **extra: str):
    values = tiny_overrides(out, **{"train.deterministic": "true", "optim.lr": "0.05", **extra})
    values.pop("data.spec")  # the data sets come from the caller
    return load_config(None, values)


def test_a_user_model_and_data_sets_train_with_the_recipe(tmp_path: Path) -> None:
    model = TinyNet()
    train_set, val_set = _datasets()
    result = rectifiers.fit(_config(tmp_path / "run", **{"train.epochs": "3"}), model, train_set, val_set)
    assert result["status"] == "completed" and result["epoch"] == 3
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert (tmp_path / "run" / "init_report.md").read_text().count("| conv") == 1  # He init was applied
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["classes"] == ["dark", "mid", "bright"]
    assert state["model_args"]["class"].endswith("TinyNet")
    trained = model.state_dict()
    assert all(torch.equal(trained[k].cpu(), v) for k, v in state["model"].items())  # the object trained


def test_a_user_model_resumes_when_passed_again(tmp_path: Path) -> None:
    train_set, val_set = _datasets()
    torch.manual_seed(0)
    rectifiers.fit(_config(tmp_path / "full", **{"train.epochs": "2"}), TinyNet(), train_set, val_set)
    rectifiers.fit(_config(tmp_path / "part", **{"train.epochs": "1"}), TinyNet(), train_set, val_set)
    resumed = rectifiers.fit(
        _config(tmp_path / "part", **{"train.epochs": "2", "train.resume": "auto"}),
        TinyNet(),
        train_set,
        val_set,
    )
    assert resumed["epoch"] == 2
    full = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    part = load_checkpoint(tmp_path / "part" / "last.pt")["model"]
    for key in full:
        assert torch.equal(full[key], part[key]), key


def test_resuming_with_another_model_is_refused(tmp_path: Path) -> None:
    train_set, val_set = _datasets()
    rectifiers.fit(_config(tmp_path / "run", **{"train.epochs": "1"}), TinyNet(), train_set, val_set)
    with pytest.raises(CheckpointError, match="TinyNet"):
        rectifiers.fit(
            _config(tmp_path / "run", **{"train.epochs": "2", "train.resume": "auto"}),
            TinyNet(classes=5),
            train_set,
            val_set,
        )


def test_loading_a_user_model_without_its_class_is_refused_clearly(tmp_path: Path) -> None:
    train_set, val_set = _datasets()
    rectifiers.fit(_config(tmp_path / "run", **{"train.epochs": "1"}), TinyNet(), train_set, val_set)
    with pytest.raises(CheckpointError, match=r"TinyNet.*load_state_dict"):
        load_model(tmp_path / "run" / "last.pt")


def test_data_sets_come_in_pairs(tmp_path: Path) -> None:
    train_set, _ = _datasets()
    with pytest.raises(ValueError, match="train_set and val_set"):
        rectifiers.fit(_config(tmp_path / "run"), TinyNet(), train_set)


def test_a_user_model_with_registry_data(tmp_path: Path) -> None:
    config = load_config(None, tiny_overrides(tmp_path / "run", **{"train.epochs": "1"}))
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4)
    )
    assert rectifiers.fit(config, model)["status"] == "completed"
