"""The training recipe every experiment shares: the paper's initialization on every layer."""

from __future__ import annotations

import math

import pytest
import torch

from rectifiers.checkpoint import load_checkpoint
from rectifiers.config import load_config
from rectifiers.engine import fit
from rectifiers.experiments.recipe import RECIPE, SMOKE_DATA, SMOKE_MODEL


@pytest.mark.parametrize("scheme, gain", [("he", math.sqrt(2)), ("xavier", 1.0)])
def test_recipe_gives_conv1_the_schemes_std(tmp_path, scheme, gain):
    # The paper adopts Eq. 10 on the first layer too ("for simplicity"): in the He arm of Figures 2/3
    # conv1 must get sqrt(2/n), not the linear case's sqrt(1/n) that Xavier's arm has.
    values = {
        **RECIPE,
        **SMOKE_MODEL,
        "model.width": 0.25,  # 16 conv1 filters: 432 weights, a std measured to a few percent
        "data.spec": SMOKE_DATA,
        "model.name": "net22",
        "model.act": "relu",
        "init.scheme": scheme,
        "optim.lr": 1e-9,  # the one step leaves the initial weights as they were
        "train.max_steps": 1,
        "train.out": str(tmp_path / scheme),
        "train.quiet": True,
    }
    fit(load_config("default", values))
    weights = load_checkpoint(tmp_path / scheme / "last.pt")["model"]
    conv1 = next(w for k, w in weights.items() if k.endswith("weight") and w.ndim == 4)
    n = conv1[0].numel()
    assert float(conv1.float().std()) == pytest.approx(gain / math.sqrt(n), rel=0.12)
    assert torch.all(conv1.isfinite())


def test_init_a_is_a_number_or_auto():
    assert load_config(None, {"init.a": "0"}).init.a == 0.0
    assert load_config(None, {"init.a": 0.25}).init.a == 0.25
    assert load_config(None).init.a == "auto"
    with pytest.raises(ValueError, match="init.a must be 'auto' or a number"):
        load_config(None, {"init.a": "zero"})
    with pytest.raises(ValueError, match="init.a"):
        load_config(None, {"init.a": True})
