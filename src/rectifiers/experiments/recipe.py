"""How every training run of the experiments is made: the config it starts from, its lr schedule,
its held-out split, the data it trains on by default, and the presets that size the runs: `smoke`
(seconds, what the test suite runs) and `full` (what the README reports).

What "full" promises: every run ends trained out (`verdict.trained_out`: the held-out validation
error of the last 3 epochs within 1 point; a run that does not is reported so, never re-run longer)
on CIFAR-10's training set less 10% of every class held out for validation (45,000 images), tested
once on its 10,000 test images, with the paper's recipe scaled down: SGD momentum 0.9, weight decay
5e-4 never on slopes, lr 0.01 divided by 10 at fixed epochs (the same for every arm), batch 128,
dropout 0.5. To fit each experiment within 2 hours alone on a 2-core CPU the nets are narrower
(width 0.125, fc 128) and the images stay CIFAR's 32 px (crops of 28); the epochs and milestones
were fixed before any full run (their sizing is in benchmarks/RESULTS.md). Where an experiment
exceeds 2 hours on an idle machine, the remedy is a narrower net, not fewer epochs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rectifiers import cifar10
from rectifiers.experiments.tables import pct

# The recipe of every training experiment, on top of the `default` preset (small-image net14
# family, width 0.25, fc 256, SGD lr 0.01, momentum 0.9, weight decay 5e-4 except on slopes, batch
# 128). He's init in its Eq. 10 form with a = 0 on every layer, conv1 included: the paper's choice
# ("we also adopt Eq. (10) in the first layer for simplicity"), and one std per layer for ReLU and
# PReLU alike, so runs of one seed start from the same weights whatever the activation.
# The input side follows Table 2's "resized so that the shorter side is 256 ... each view is 224":
# shorter side 32, crops of 28 (the same 0.875), no scale jitter; half the training crops flipped
# (Sec. 3). Validation is the center crop of the 32-px image; ten-view testing takes its four
# corners and center, each flipped.
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
        f"{pct(settings['val_fraction'], 0)}% of every class of train held out for validation, the val "
        "split tested once at the end."
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


# Tiny data and nets for the smoke presets (seconds; what the test suite runs).
SMOKE_DATA = "fake:n=64,val=32,size=32,classes=4,channels=3"
SMOKE_MODEL: dict[str, Any] = {"model.width": 0.0625, "model.fc_width": 16, "train.batch_size": 32}


def smoke(summary: str) -> dict[str, Any]:
    """The smoke preset of a training experiment: one epoch of one seed, tiny fake images, tiny nets."""
    return {
        "seeds": 1,
        "epochs": 1,
        "milestones": [],
        "n_train": None,
        "n_val": None,
        "val_fraction": 0.25,
        "data": SMOKE_DATA,
        "overrides": SMOKE_MODEL,
        "summary": summary,
    }


VAL_FRACTION = 0.1  # of every class of CIFAR-10's 50,000 training images, held out for validation
NARROW = {"model.width": 0.125, "model.fc_width": 128}

# Table 2 and Table 1: 3 seeds x 3 activations of net14 (Table 1 reads the 6 PReLU runs). lr 0.01
# for 16 epochs, 0.001 for 6, 0.0001 for the last 2: the last three epochs come after the first drop.
FULL_TABLE2: dict[str, Any] = {
    "seeds": 3,
    "epochs": 24,
    "milestones": [16, 22],
    "n_train": None,
    "n_val": None,
    "val_fraction": VAL_FRACTION,
    "overrides": NARROW,
    "summary": "3 seeds, 24 epochs of CIFAR-10's 45,000 train images (5,000 held out), ten-view test on "
    "the 10,000 test images; width 0.125, fc 128",
}

# Figures 2 and 3: 2 seeds x {22, 30 layers} x {He, Xavier}. lr 0.01 for 8 epochs (the paper's
# figures tell the inits apart within their first epochs), 0.001 for 2, 0.0001 for the last 2: the
# last three epochs come after the first drop.
FULL_CONVERGENCE: dict[str, Any] = {
    "seeds": 2,
    "epochs": 12,
    "milestones": [8, 10],
    "n_train": None,
    "n_val": None,
    "val_fraction": VAL_FRACTION,
    "overrides": NARROW,
    "summary": "2 seeds, 12 epochs of CIFAR-10's 45,000 train images (5,000 held out); width 0.125, fc 128",
}
