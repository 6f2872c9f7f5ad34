"""The presets the training experiments share: `smoke` (seconds, what the test suite runs) and the
`full` ones, whose runs the README reports.

What "full" promises: every run ends trained out (`verdict.trained_out`: the held-out validation
error of the last 3 epochs within 1 point; a run that does not is reported so, never re-run longer)
on CIFAR-10's training set less 10% of every class held out for validation (45,000 images), tested
once on its 10,000 test images, with the paper's recipe scaled down: SGD momentum 0.9, weight decay
5e-4 never on slopes, lr 0.01 divided by 10 at the fixed epochs below (the same for every arm),
batch 128, dropout 0.5. To fit each experiment within 2 hours alone on a 2-core CPU the nets are
narrower (width 0.125, fc 128) and the images stay CIFAR's 32 px (crops of 28); the epochs and
milestones were fixed before any full run (their sizing is in benchmarks/RESULTS.md). Where an
experiment exceeds 2 hours on an idle machine, the remedy is a narrower net, not fewer epochs.
"""

from __future__ import annotations

from typing import Any

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
