"""Timing the trainer's step against a plain loop (`rectifiers.step_timing`) on a tiny model; timings
themselves are never asserted."""

from __future__ import annotations

import pytest
import torch

from rectifiers.activations import PReLU
from rectifiers.step_timing import VARIANTS, StepCase, make_step, time_steps
from rectifiers.train_step import TrainStep

TINY = StepCase(
    label="tiny", model="net14", width=0.125, fc_width=16, in_chans=1, size=16, classes=4, batch=4
)


def _model_of(step: object) -> torch.nn.Module:
    """The model a step closure trains: the plain loop's own, or the one its `TrainStep` holds."""
    cells = [c.cell_contents for c in getattr(step, "__closure__", None) or ()]
    train_steps = [c for c in cells if isinstance(c, TrainStep)]
    return train_steps[0].model if train_steps else next(c for c in cells if isinstance(c, torch.nn.Module))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains(variant: str) -> None:
    step = make_step(TINY, variant)
    model = _model_of(step)
    kind, _, act = variant.partition("/")
    weights = {
        n: p.detach().clone()
        for n, p in model.named_parameters()
        if n.endswith(("conv1.weight", "fc3.weight"))
    }
    step()
    params = dict(model.named_parameters())
    assert len(weights) == 2 and all(not torch.equal(w, params[n]) for n, w in weights.items())
    activations = {type(m) for m in model.modules() if "ReLU" in type(m).__name__}
    expected = {"relu": torch.nn.ReLU, "prelu": torch.nn.PReLU if kind == "plain" else PReLU}[act]
    assert activations == {expected}
    layout = torch.channels_last if kind == "trainer" else torch.contiguous_format
    assert params["features.conv1.weight"].is_contiguous(memory_format=layout)


def test_time_steps_rows_and_ratios() -> None:
    rows = time_steps([TINY], repeats=2, warmup=1, peaks={"float32": 1.0, "bfloat16": 1.0})
    assert [r["variant"] for r in rows] == list(VARIANTS)
    for r in rows:
        assert r["wall_ms"] > 0 and r["cpu_ms"] >= 0 and r["images_per_s"] > 0 and r["gflops"] > 0
        assert r["peak_fraction"] == pytest.approx(r["gflops"])  # a peak of 1 GFLOP/s
        assert r["compute_dtype"] in ("float32", "bfloat16") and r["precision_reason"]
    top = rows[0]
    assert {"prelu_vs_relu", "prelu_vs_relu_cpu", "vs_plain", "vs_plain_cpu", "vs_plain_relu"} <= set(top)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        make_step(TINY, "plain/elu")
    with pytest.raises(ValueError, match="unknown variant"):
        time_steps([TINY], variants=("fast",))
    with pytest.raises(ValueError, match="repeats"):
        time_steps([TINY], repeats=0)
