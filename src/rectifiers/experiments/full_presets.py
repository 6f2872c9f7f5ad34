"""The `full` presets of the training experiments: trained-out runs within 2 hours on a 2-core CPU.

What "full" promises (the issue of trained-out runs): every run ends with its held-out validation
error flat (`verdict.trained_out`: the last 3 epochs within 1 point), on the whole CIFAR-10 training
set less a held-out 10% per class, with the paper's recipe scaled down: SGD momentum 0.9, weight
decay 5e-4 never on slopes, lr 0.01 divided by 10 at fixed epochs (the same for every arm), batch
128, dropout 0.5. To fit the budget, the nets are narrower, never trained for fewer steps: the
width shrinks, the epochs and milestones below are fixed before any run.

Sizing (estimated, not measured on an idle machine): see `SIZING`.
"""

from __future__ import annotations

from typing import Any

CIFAR_TRAIN = 50_000  # CIFAR-10's training images; 10% of each class held out for validation
VAL_FRACTION = 0.1

# Table 2 and Table 1: 3 seeds x 3 activations of net14 (Table 1 reads the 6 PReLU runs).
FULL_TABLE2: dict[str, Any] = {
    "seeds": 3,
    "epochs": 12,
    "milestones": [8, 11],
    "n_train": None,
    "n_val": None,
    "val_fraction": VAL_FRACTION,
    "overrides": {"model.width": 0.125, "model.fc_width": 128},
    "summary": "3 seeds, 12 epochs of CIFAR-10's 45,000 train images (5,000 held out), ten-view test on "
    "10,000; width 0.125",
}

# Figures 2 and 3: 2 seeds x {22, 30 layers} x {He, Xavier}, lr 0.01 constant as the paper's
# first epochs are.
FULL_CONVERGENCE: dict[str, Any] = {
    "seeds": 2,
    "epochs": 10,
    "n_train": None,
    "n_val": None,
    "val_fraction": VAL_FRACTION,
    "overrides": {"model.width": 0.125, "model.fc_width": 128},
    "summary": "2 seeds, 10 epochs of CIFAR-10's 45,000 train images (5,000 held out); width 0.125",
}

SIZING = ""
