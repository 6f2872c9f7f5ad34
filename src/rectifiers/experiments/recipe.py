"""How every training run of the experiments is made: the config it starts from, its lr schedule,
its held-out split, the data it trains on by default, and the presets that size the runs: `smoke`
(seconds, what the test suite runs) and `full` (what the README reports).

"full" promises that every run ends trained out (`verdict.trained_out`; a run that does not is
reported so, never re-run longer) on CIFAR-10 less 10% of every class held out, tested once on its
test set, with the paper's recipe scaled down to fit each experiment within 2 hours on a 2-core CPU:
narrower nets and CIFAR's 32 px, never fewer epochs (their sizing is in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rectifiers import cifar10
from rectifiers.experiments.tables import pct

# On top of the `default` preset. He's Eq. 10 with a = 0 on every layer, conv1 included (the paper's
# "for simplicity"): one std per layer for ReLU and PReLU alike, so runs of one seed start from the
# same weights. Shorter side 32, crops of 28: Table 2's 224/256 ratio, no scale jitter.
RECIPE: dict[str, Any] = {
    "data.crop": 28,
    "data.scale_min": 32,
    "data.scale_max": 32,
    "data.eval_resize": 32,
    "data.flip": 0.5,
    "data.pca_std": 0.0,
    "model.stem": "small",
    "model.width": 0.25,
    "model.fc_width": 256,
    "init.scheme": "he",
    "init.mode": "fan_in",
    "init.a": 0.0,
    "train.batch_size": 128,
}


def schedule(settings: dict[str, Any]) -> dict[str, Any]:
    """A preset's fixed-epoch lr schedule (its "milestones": lr ÷ 10 after each), as config overrides."""
    if settings["milestones"]:
        return {"optim.schedule": "milestones", "optim.milestones": settings["milestones"]}
    return {"optim.schedule": "constant"}


def schedule_text(settings: dict[str, Any]) -> str:
    """'lr 0.01 ÷ 10 after epochs 5, 7' or 'lr 0.01 constant'."""
    if settings["milestones"]:
        return f"lr 0.01 ÷ 10 after epochs {', '.join(map(str, settings['milestones']))}"
    return "lr 0.01 constant"


def holdout_text(settings: dict[str, Any]) -> str:
    """The setup's sentence on the preset's validation split."""
    return (
        f"{pct(settings['val_fraction'], 0)}% of every class of train held out for validation; the "
        "test images evaluated once, at the end."
    )


def shared_data_dir() -> Path:
    """`shared/data` beside the repository (where this checkout keeps its real data sets)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def default_training_data() -> tuple[str, str]:
    """The data of the experiments that train, and a note when it is not CIFAR-10 ("" when it is).

    CIFAR-10 as distributed, where $RECTIFIERS_CIFAR10 points at it; else the copy in the shared data
    folder beside this checkout; else the embedded mnist5k, whose numbers the README's tables (made
    on CIFAR-10) cannot be compared with: hence the note, which the run says and table.md keeps.
    """
    if os.environ.get(cifar10.ENV):
        return "cifar10", ""
    shared = shared_data_dir() / "cifar10" / "CIFAR-10-images.zip"
    if shared.is_file():
        return f"folder:{shared}", ""
    return "mnist5k", (
        f"no CIFAR-10 found (set {cifar10.ENV} to cifar-10-python.tar.gz, see the README's CIFAR-10 "
        "section, or pass --data): this run trained on mnist5k instead, so its numbers are not "
        "comparable with the README's tables"
    )


def fallback_banner(note: str) -> str:
    """`note` framed so that it stands out among the progress lines."""
    rule = "!" * 100
    return f"{rule}\nDATA FALLBACK: {note}\n{rule}"


VAL_FRACTION = 0.1  # of every class of train, held out for validation (CIFAR-10: 5,000 of 50,000)
NARROW = {"model.width": 0.125, "model.fc_width": 128}
# Tiny data and nets for the smoke presets (seconds; what the test suite runs).
SMOKE_DATA = "fake:n=64,val=32,size=32,classes=4,channels=3"
SMOKE_MODEL: dict[str, Any] = {"model.width": 0.0625, "model.fc_width": 16, "train.batch_size": 32}


def preset(summary: str, seeds: int, epochs: int, milestones: list[int], **more: Any) -> dict[str, Any]:
    """A training experiment's preset: `seeds` runs of every arm, `epochs` epochs with the lr ÷ 10
    after each of `milestones`; `more` sets `n_train` / `n_val` (at most so many images; default all),
    `val_fraction` (of train held out; default `VAL_FRACTION`), and the preset's own `data` or `overrides`."""
    split = {"n_train": None, "n_val": None, "val_fraction": VAL_FRACTION}
    return {"seeds": seeds, "epochs": epochs, "milestones": milestones, **split, **more, "summary": summary}


def smoke(summary: str) -> dict[str, Any]:
    """The smoke preset of a training experiment: one epoch of one seed, tiny fake images, tiny nets."""
    return preset(
        summary, seeds=1, epochs=1, milestones=[], val_fraction=0.25, data=SMOKE_DATA, overrides=SMOKE_MODEL
    )


# Table 2 and Table 1. The last three epochs (the trained-out window) come after the first drop.
FULL_TABLE2 = preset(
    "3 seeds, 24 epochs of CIFAR-10's 45,000 train images (5,000 held out), ten-view test on the 10,000 "
    "test images; width 0.125, fc 128",
    seeds=3,
    epochs=24,
    milestones=[16, 22],
    overrides=NARROW,
)
# Figures 2 and 3: the paper's figures tell the inits apart within their first epochs, so a short
# first lr; the last three epochs come after the first drop.
FULL_CONVERGENCE = preset(
    "2 seeds, 12 epochs of CIFAR-10's 45,000 train images (5,000 held out); width 0.125, fc 128",
    seeds=2,
    epochs=12,
    milestones=[8, 10],
    overrides=NARROW,
)
