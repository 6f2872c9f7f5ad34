"""Signal-variance diagnostics against the paper's laws (Eq. 7, 9, 12, 13) on plain deep ReLU nets."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from rectifiers.activations import PReLU
from rectifiers.demo_nets import plain_convnet, plain_mlp
from rectifiers.diagnostics import signal_variance, signal_variance_over_draws
from rectifiers.init import initialize

WIDTH, DEPTH = 1024, 30


def _mlp_builder(scheme: str, mode: str = "fan_in"):
    def build(seed: int) -> nn.Module:
        with torch.device("meta"):  # skip PyTorch's own init: it is overwritten right away
            model = plain_mlp(DEPTH, WIDTH)
        model.to_empty(device="cpu")
        initialize(model, scheme=scheme, mode=mode, generator=torch.Generator().manual_seed(seed))
        return model

    return build


@pytest.fixture(scope="module")
def x_mlp() -> torch.Tensor:
    return torch.randn(64, WIDTH, generator=torch.Generator().manual_seed(1234))


def test_he_keeps_the_forward_signal_over_30_layers(x_mlp: torch.Tensor) -> None:
    """Eq. 10: with ½·n·Var[w] = 1 the geometric mean over 8 draws of Var[y_30]/Var[y_1] stays
    within [0.5, 2] (a single draw of a finite net wanders, so the mean over draws is tested)."""
    draws = signal_variance_over_draws(_mlp_builder("he"), x_mlp, draws=8, backward=False)
    gmean, spread, lo, hi = draws.forward_ratio
    assert 0.5 <= gmean <= 2.0
    assert draws.forward_ratio_eq9[0] == pytest.approx(1.0, rel=0.05)  # the weights obey Eq. 10
    assert lo <= gmean <= hi and spread >= 1.0


def test_xavier_fan_in_shrinks_the_forward_signal_by_2_to_the_29(x_mlp: torch.Tensor) -> None:
    """Xavier's n·Var[w] = 1 loses the factor ½ at each of layers 2..30: 2^-29 ≈ 1.9e-9."""
    draws = signal_variance_over_draws(_mlp_builder("xavier"), x_mlp, draws=8, backward=False)
    gmean = draws.forward_ratio[0]
    assert 2.0**-29 / 4 <= gmean <= 2.0**-29 * 4
    assert draws.forward_ratio_eq9[0] == pytest.approx(2.0**-29, rel=0.1)


def test_eq7_and_eq12_hold_layer_by_layer_at_width_1024(x_mlp: torch.Tensor) -> None:
    report = signal_variance(_mlp_builder("he")(0), x_mlp, generator=torch.Generator().manual_seed(77))
    assert len(report.rows) == DEPTH and [r.name for r in report.rows][:2] == ["fc1", "fc2"]
    for row in report.rows:
        assert row.var_y == pytest.approx(row.var_y_eq7, rel=0.25), row.name
        assert row.var_dx == pytest.approx(row.var_dx_eq12, rel=0.25), row.name
    # ReLU after every layer: E[x_l²] ≈ ½ Var[y_{l-1}] (Eq. 8), on average over the layers.
    halves = [nxt.ex2 / row.var_y for row, nxt in itertools.pairwise(report.rows)]
    assert sum(halves) / len(halves) == pytest.approx(0.5, rel=0.05)
    assert report.forward_ratio_eq9 == pytest.approx(1.0, rel=0.05)
    # fan_in mode: the first layer has no rectifier before it, so a = 1 (Var[w] = 1/n); the rest 2/n.
    assert report.rows[0].var_w == pytest.approx(1 / WIDTH, rel=0.02)
    assert report.rows[1].var_w == pytest.approx(2 / WIDTH, rel=0.02)


def test_he_fan_out_keeps_the_backward_signal(x_mlp: torch.Tensor) -> None:
    """Eq. 14: with ½·n̂·Var[w] = 1 the gradient keeps its scale from layer 30 back to layer 1."""
    draws = signal_variance_over_draws(_mlp_builder("he", mode="fan_out"), x_mlp, draws=2)
    assert draws.backward_ratio_eq13 is not None and draws.backward_ratio is not None
    assert draws.backward_ratio_eq13[0] == pytest.approx(1.0, rel=0.05)
    assert 0.5 <= draws.backward_ratio[0] <= 2.0


def test_chained_predictions_are_the_products_of_eq9_and_eq13() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(16, 32),
        PReLU(32),
        nn.Linear(32, 24),
        nn.LeakyReLU(0.1),
        nn.Linear(24, 8),
    )
    initialize(model, scheme="gaussian", std=0.1, generator=torch.Generator().manual_seed(0))
    report = signal_variance(model, torch.randn(50, 16))
    r1, r2, r3 = report.rows
    assert (r2.slope_in, r3.slope_in, r3.slope_out) == (0.25, pytest.approx(0.1), None)
    eq9 = r1.var_y * (0.5 * 1.0625 * 32 * r2.var_w) * (0.5 * 1.01 * 24 * r3.var_w)
    assert r3.var_y_eq9 == pytest.approx(eq9)
    # backward: anchored at the last layer's measured Var[Δy]; no rectifier after it.
    assert r3.var_dx_eq13 == pytest.approx(r3.n_hat * r3.var_w * r3.var_dy)
    eq13 = r3.var_dx_eq13 * (0.5 * 1.01 * r2.n_hat * r2.var_w) * (0.5 * 1.0625 * r1.n_hat * r1.var_w)
    assert r1.var_dx_eq13 == pytest.approx(eq13)
    assert report.forward_ratio_eq9 == pytest.approx(r3.var_y_eq9 / r1.var_y)


def test_circular_convnet_follows_eq7() -> None:
    """Circular padding gives every response its full n = k²c connections (Eq. 5)."""
    torch.manual_seed(0)
    model = plain_convnet(depth=4, width=128, in_channels=3)
    initialize(model, mode="fan_in", generator=torch.Generator().manual_seed(0))
    report = signal_variance(model, torch.randn(8, 3, 12, 12), generator=torch.Generator().manual_seed(77))
    assert [r.n for r in report.rows] == [27, 1152, 1152, 1152]
    for row in report.rows:
        assert row.var_y == pytest.approx(row.var_y_eq7, rel=0.25), row.name
        assert row.var_dx == pytest.approx(row.var_dx_eq12, rel=0.25), row.name


def test_transposed_convs_follow_eq7_and_eq12() -> None:
    """Kernel 4 at stride 2 (2x upsampling): a response sums (c/g)·k²/stride² terms, an input feeds
    (d/g)·k²; He's init with those fans keeps both signals (borders, with fewer taps, cost a few %)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.ConvTranspose2d(16, 64, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1, groups=2),
        nn.ReLU(),
    )
    initialize(model, mode="fan_in", generator=torch.Generator().manual_seed(0))
    report = signal_variance(model, torch.randn(8, 16, 16, 16), generator=torch.Generator().manual_seed(5))
    assert [(r.n, r.n_hat) for r in report.rows] == [(64, 1024), (128, 512)]
    for row in report.rows:
        assert row.var_y == pytest.approx(row.var_y_eq7, rel=0.15), row.name
        assert row.var_dx == pytest.approx(row.var_dx_eq12, rel=0.15), row.name


def test_measurement_leaves_the_model_as_it_was() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 4))
    model.train()
    model[3].eval()
    signal_variance(model, torch.randn(16, 8))
    assert model.training and model[2].training and not model[3].training
    assert all(p.grad is None for p in model.parameters())
    assert not model[0]._forward_hooks and not model[3]._forward_hooks


def test_shared_layer_called_twice_is_reported_per_call() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 6)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.act(self.fc(x)))

    report = signal_variance(Twice(), torch.randn(10, 6))
    assert [r.name for r in report.rows] == ["fc", "fc#2"]


def test_errors() -> None:
    with pytest.raises(ValueError, match="no Conv1d/2d/3d, ConvTranspose1d/2d/3d or Linear"):
        signal_variance(nn.ReLU(), torch.randn(3))
    with pytest.raises(ValueError, match="draws"):
        signal_variance_over_draws(lambda s: nn.Linear(2, 2), torch.randn(2, 2), draws=0)
    with pytest.raises(ValueError, match="depth and width"):
        plain_mlp(0, 8)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        plain_convnet(2, 4, act="gelu")


def test_table_dict_and_plots(tmp_path: Path) -> None:
    torch.manual_seed(0)
    build = lambda seed: initialize_and_return(plain_mlp(5, 32), seed)  # noqa: E731
    x = torch.randn(16, 32)
    report = signal_variance(build(0), x)
    text = str(report)
    assert "Var[Δx]" in text and "fc5" in text and "forward  Var[y_L]/Var[y_1]" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert len(data["layers"]) == 5 and math.isclose(data["forward_ratio"], report.forward_ratio)
    png = report.plot(tmp_path / "single.png", title="5-layer MLP")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    draws = signal_variance_over_draws(build, x, draws=3)
    assert "3 independent draws" in str(draws) and "range" in str(draws)
    assert json.loads(json.dumps(draws.to_dict()))["draws"] == 3
    assert draws.plot(tmp_path / "sub" / "draws.png").stat().st_size > 1000
    forward_only = signal_variance(build(1), x, backward=False)
    assert forward_only.backward_ratio is None and "Var[Δx]" not in str(forward_only)
    assert forward_only.plot(tmp_path / "fwd.png").exists()


def initialize_and_return(model: nn.Module, seed: int) -> nn.Module:
    initialize(model, generator=torch.Generator().manual_seed(seed))
    return model
