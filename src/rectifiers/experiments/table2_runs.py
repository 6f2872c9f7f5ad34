"""Table 2's training runs, which Table 1 reads too: `net14` with each activation, every seed.

`relu-vs-prelu` and `coefficients` train through here into the same run directories (under
`relu-vs-prelu`'s output), so whichever runs first trains them and the other reuses them.
"""

from __future__ import annotations

from typing import Any

from rectifiers.experiments.context import Context
from rectifiers.experiments.recipe import FULL_TABLE2, preset, smoke
from rectifiers.experiments.runs import Run, train_arms

EXPERIMENT = "relu-vs-prelu"  # whose output folder keeps the runs

TABLE2_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": smoke("1 epoch on 64 fake images, tiny net"),
    "quick": preset(
        "2 seeds, 2 epochs of 1,800 images (200 held out), ten-view test on 500",
        seeds=2,
        epochs=2,
        milestones=[1],
        n_train=2000,
        n_val=500,
    ),
    "full": FULL_TABLE2,
}


def train_net14(ctx: Context, acts: list[str]) -> tuple[str, dict[str, int], dict[str, list[Run]]]:
    """Train (or reuse) `net14` with each activation in `acts` for every seed, Table 2's recipe.
    Returns (data spec used, split sizes, runs per activation)."""
    arms = {act: {"model.name": "net14", "model.act": act} for act in acts}
    return train_arms(ctx, arms, EXPERIMENT)
