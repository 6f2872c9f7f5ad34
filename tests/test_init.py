"""Initialization (paper Eq. 5-15): fans by hand, stds by formula and by measurement, initialize()."""

from __future__ import annotations

import json
import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from rectifiers.activations import PReLU
from rectifiers.init import (
    calculate_fans,
    gaussian_,
    he_normal_,
    he_std,
    he_uniform_,
    initialize,
    rectifier_gain,
    variance_chain,
    weight_layers,
    xavier_normal_,
    xavier_std,
    xavier_uniform_,
)

# --- fans: n = k²c (Eq. 5), n̂ = k²d (Eq. 11), checked by hand for every layout --------------------


@pytest.mark.parametrize(
    ("layer", "fan_in", "fan_out"),
    [
        (nn.Linear(300, 70), 300, 70),  # weight (out, in): fan_in is dim 1, not dim 0
        (nn.Conv1d(16, 32, 5), 5 * 16, 5 * 32),
        (nn.Conv2d(3, 64, 7), 7 * 7 * 3, 7 * 7 * 64),
        (nn.Conv2d(64, 128, (3, 2)), 3 * 2 * 64, 3 * 2 * 128),
        (nn.Conv3d(4, 8, 3), 27 * 4, 27 * 8),
        # grouped: each response sees c/g channels, each input feeds d/g filters
        (nn.Conv2d(32, 64, 3, groups=4), 9 * 32 // 4, 9 * 64 // 4),
        (nn.Conv2d(16, 16, 3, groups=16), 9, 9),  # depthwise
    ],
)
def test_fans_by_hand(layer: nn.Module, fan_in: int, fan_out: int) -> None:
    groups = getattr(layer, "groups", 1)
    assert calculate_fans(layer.weight, groups) == (fan_in, fan_out)
    assert calculate_fans(tuple(layer.weight.shape), groups) == (fan_in, fan_out)
    if groups == 1:  # identical to torch.nn.init's fans for ungrouped layers
        assert (fan_in, fan_out) == nn.init._calculate_fan_in_and_fan_out(layer.weight)


def test_grouped_fans_match_the_measured_variance_laws() -> None:
    """Var[y] = n·Var[w]·E[x²] (Eq. 7) and Var[Δx] = n̂·Var[w]·Var[Δy] (Eq. 12) with the
    group-aware n and n̂, measured on a circular-padded grouped conv (no border effects)."""
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(32, 64, 3, padding=1, padding_mode="circular", groups=4, bias=False)
    gaussian_(conv.weight, 0.1, gen)
    var_w = conv.weight.var().item()
    n, n_hat = calculate_fans(conv.weight, groups=4)
    x = torch.randn(16, 32, 16, 16, generator=gen, requires_grad=True)
    y = conv(x)
    r = torch.randn(y.shape, generator=gen)
    (gx,) = torch.autograd.grad(y, x, r)
    assert y.var().item() == pytest.approx(n * var_w * x.pow(2).mean().item(), rel=0.05)
    assert gx.var().item() == pytest.approx(n_hat * var_w * r.var().item(), rel=0.05)


def test_fans_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2 dims"):
        calculate_fans(torch.empty(5))
    with pytest.raises(ValueError, match="groups"):
        calculate_fans((6, 2, 3, 3), groups=4)
    with pytest.raises(ValueError, match="mode must be one of"):
        he_std((4, 4), mode="fan_sideways")
    with pytest.raises(ValueError, match="at least 2 dims"):
        he_normal_(torch.empty(10))
    with pytest.raises(ValueError, match="non-negative"):
        gaussian_(torch.empty(3), -0.1)


# --- the std formulas ------------------------------------------------------------------------------


def test_gain_a0_is_sqrt2_a1_is_linear_xavier() -> None:
    shape = (256, 128, 3, 3)
    n_in = 128 * 9
    assert rectifier_gain(0.0) == pytest.approx(math.sqrt(2))
    assert rectifier_gain(0.25) == pytest.approx(1.372, abs=5e-4)  # paper's PReLU init
    assert he_std(shape, a=0.0) == pytest.approx(math.sqrt(2 / n_in))
    # a = 1 is the linear case: Caffe's "xavier" (fan_in), std sqrt(1/n)
    assert he_std(shape, a=1.0) == pytest.approx(math.sqrt(1 / n_in))
    assert he_std(shape, a=1.0) == pytest.approx(xavier_std(shape, mode="fan_in"))
    assert he_std(shape, a=0.25, mode="fan_out") == pytest.approx(math.sqrt(2 / (1.0625 * 256 * 9)))
    # Glorot: 2 / (fan_in + fan_out)
    assert xavier_std(shape) == pytest.approx(math.sqrt(2 / (n_in + 256 * 9)))


def test_vgg_b_stds_of_the_paper() -> None:
    """Eq. 14 for 3×3 convs with 64/128/256/512 filters: 0.059, 0.042, 0.029, 0.021 (Sec. 2.2)."""
    stds = [he_std((d, d, 3, 3), mode="fan_out") for d in (64, 128, 256, 512)]
    assert [round(s, 3) for s in stds] == [0.059, 0.042, 0.029, 0.021]


def test_matches_torch_kaiming_normal_std() -> None:
    for mode in ("fan_in", "fan_out"):
        torch_std = nn.init.calculate_gain("leaky_relu", 0.25) / math.sqrt(
            nn.init._calculate_correct_fan(torch.empty(64, 32, 3, 3), mode)
        )
        assert he_std((64, 32, 3, 3), a=0.25, mode=mode) == pytest.approx(torch_std)


INIT_CASES = [
    (he_normal_, {"a": 0.0}, lambda s, m: he_std(s, 0.0, m)),
    (he_normal_, {"a": 0.25}, lambda s, m: he_std(s, 0.25, m)),
    (he_uniform_, {"a": 0.0}, lambda s, m: he_std(s, 0.0, m)),
    (he_uniform_, {"a": 0.25}, lambda s, m: he_std(s, 0.25, m)),
    (xavier_normal_, {}, lambda s, m: xavier_std(s, m)),
    (xavier_uniform_, {}, lambda s, m: xavier_std(s, m)),
]


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize(("fn", "kwargs", "expect"), INIT_CASES)
def test_empirical_std_within_2_percent(fn, kwargs, expect, mode: str) -> None:
    shape = (256, 96, 3, 3)  # 221,184 draws: the sample std is within ~0.3% of the true one
    gen = torch.Generator().manual_seed(7)
    w = torch.empty(shape)
    out = fn(w, mode=mode, generator=gen, **kwargs)
    assert out is w
    assert w.std().item() == pytest.approx(expect(shape, mode), rel=0.02)
    assert abs(w.mean().item()) < 0.01 * expect(shape, mode)
    if fn in (he_uniform_, xavier_uniform_):
        assert w.abs().max().item() <= math.sqrt(3) * expect(shape, mode) + 1e-7


def test_gaussian_is_untruncated_and_generator_reproducible() -> None:
    w1 = gaussian_(torch.empty(200_000), 0.01, torch.Generator().manual_seed(3))
    w2 = gaussian_(torch.empty(200_000), 0.01, torch.Generator().manual_seed(3))
    assert torch.equal(w1, w2)
    assert w1.std().item() == pytest.approx(0.01, rel=0.02)
    assert w1.abs().max().item() > 0.04  # beyond 2σ (and 4σ here): no truncation


def test_grouped_init_uses_group_fans() -> None:
    w = torch.empty(64, 8, 3, 3)  # Conv2d(32, 64, 3, groups=4)
    he_normal_(w, mode="fan_out", groups=4, generator=torch.Generator().manual_seed(0))
    assert w.std().item() == pytest.approx(math.sqrt(2 / (9 * 16)), rel=0.02)


def test_init_runs_under_no_grad_on_a_leaf_parameter() -> None:
    p = nn.Parameter(torch.empty(32, 16))
    he_normal_(p)
    xavier_uniform_(p)
    assert p.requires_grad and p.grad_fn is None


# --- initialize(model) ----------------------------------------------------------------------------


def _net(act: nn.Module) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 16, 3, padding=1),
            act1=act,
            pool=nn.MaxPool2d(2),
            conv2=nn.Conv2d(16, 32, 3, padding=1),
            act2=nn.LeakyReLU(0.1),
            flat=nn.Flatten(),
            drop=nn.Dropout(),
            fc1=nn.Linear(32 * 4 * 4, 64),
            act3=PReLU(64, init=0.3),
            fc2=nn.Linear(64, 10),
        )
    )


def test_weight_layers_find_the_rectifier_on_each_side() -> None:
    layers = weight_layers(_net(nn.ReLU()))
    assert [(w.name, w.slope_in, w.slope_out) for w in layers] == [
        ("conv1", None, 0.0),
        ("conv2", 0.0, pytest.approx(0.1)),
        ("fc1", pytest.approx(0.1), pytest.approx(0.3)),
        ("fc2", pytest.approx(0.3), None),
    ]


@pytest.mark.parametrize(("act", "slope"), [(nn.ReLU(), 0.0), (PReLU(16), 0.25), (nn.PReLU(), 0.25)])
def test_initialize_auto_a_fan_out_uses_the_following_rectifier(act: nn.Module, slope: float) -> None:
    model = _net(act)
    report = initialize(model, generator=torch.Generator().manual_seed(0))
    assert [r.a for r in report] == [pytest.approx(slope), pytest.approx(0.1), pytest.approx(0.3), 1.0]
    conv1 = report["conv1"]
    assert conv1.n == 9 * 16 and conv1.rule == "he fan_out"
    assert conv1.std == pytest.approx(math.sqrt(2 / ((1 + slope**2) * 9 * 16)))
    assert report["fc2"].std == pytest.approx(math.sqrt(1 / 10))  # nothing follows: linear, a = 1
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            assert torch.count_nonzero(mod.bias) == 0, name


def test_initialize_auto_a_fan_in_uses_the_preceding_rectifier() -> None:
    report = initialize(_net(nn.ReLU()), mode="fan_in")
    assert [r.a for r in report] == [1.0, 0.0, pytest.approx(0.1), pytest.approx(0.3)]
    assert report["conv2"].std == pytest.approx(math.sqrt(2 / (9 * 16)))
    assert report["fc2"].std == pytest.approx(math.sqrt(2 / (1.09 * 64)))


def test_initialize_explicit_a_overrides_every_layer() -> None:
    report = initialize(_net(nn.ReLU()), a=0.0, mode="fan_in")
    assert [r.a for r in report] == [0.0] * 4
    assert report["conv1"].std == pytest.approx(math.sqrt(2 / 27))


def test_initialize_measured_std_follows_target() -> None:
    model = nn.Sequential(nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Conv2d(128, 256, 3), nn.ReLU())
    report = initialize(model, generator=torch.Generator().manual_seed(0))
    for row in report:
        assert row.measured_std == pytest.approx(row.std, rel=0.02)


def test_fc_std_paper_choice() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8, 4096),
        nn.ReLU(),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Linear(4096, 1000),
    )
    report = initialize(model, fc_std=(0.01, 0.01, 0.001), generator=torch.Generator().manual_seed(0))
    assert [r.std for r in report][1:] == [0.01, 0.01, 0.001]
    assert [r.rule for r in report] == ["he fan_out", "fc_std", "fc_std", "fc_std"]
    assert report[2].measured_std == pytest.approx(0.01, rel=0.02)
    assert report[3].measured_std == pytest.approx(0.001, rel=0.02)
    assert initialize(model, fc_std=0.02)[1].std == 0.02
    with pytest.raises(ValueError, match=r"fc_std has 2 entries but the model has 3 Linear layers"):
        initialize(model, fc_std=(0.01, 0.001))


def test_schemes_xavier_gaussian_torch() -> None:
    model = nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Linear(300, 200))
    gen = torch.Generator().manual_seed(0)
    xav = initialize(model, scheme="xavier", mode="fan_in", generator=gen)
    assert [r.std for r in xav] == [pytest.approx(math.sqrt(1 / 400)), pytest.approx(math.sqrt(1 / 300))]
    gau = initialize(model, scheme="gaussian", std=0.01, generator=gen)
    assert [r.std for r in gau] == [0.01, 0.01] and gau[0].a is None
    tor = initialize(model, scheme="torch")
    assert tor[0].std == pytest.approx(1 / math.sqrt(3 * 400))
    assert tor[0].measured_std == pytest.approx(tor[0].std, rel=0.02)
    assert torch.count_nonzero(model[0].bias) > 0  # PyTorch's default bias is kept


def test_initialize_errors() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="scheme must be one of"):
        initialize(model, scheme="msra")
    with pytest.raises(ValueError, match="mode must be one of"):
        initialize(model, mode="fan")
    with pytest.raises(ValueError, match="needs a non-negative std"):
        initialize(model, scheme="gaussian")
    with pytest.raises(ValueError, match="only used with scheme='gaussian'"):
        initialize(model, std=0.01)
    with pytest.raises(ValueError, match="'auto' or a number"):
        initialize(model, a="relu")
    with pytest.raises(ValueError, match="no Conv1d/2d/3d, ConvTranspose1d/2d/3d or Linear"):
        initialize(nn.Sequential(nn.ReLU()))


def _vgg_b() -> nn.Sequential:
    """The 10 conv layers of VGG configuration B (Sec. 2.2), each followed by ReLU."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    c = 3
    for i, d in enumerate([64, 64, 128, 128, 256, 256, 512, 512, 512, 512], start=1):
        layers[f"conv{i}"] = nn.Conv2d(c, d, 3, padding=1)
        layers[f"relu{i}"] = nn.ReLU()
        c = d
    return nn.Sequential(layers)


def test_vgg_b_on_meta_device_and_the_papers_attenuation() -> None:
    with torch.device("meta"):
        model = _vgg_b()
    report = initialize(model, mode="fan_out")
    assert [round(r.std, 3) for r in report][1::2] == [0.059, 0.042, 0.029, 0.021, 0.021]
    assert all(r.measured_std is None for r in report)
    assert report.attenuation("conv2", "conv10") == pytest.approx(1.0)  # He itself
    att = report.attenuation("conv2", "conv10", std=0.01)
    exact = math.prod(0.01 * math.sqrt(9 * d / 2) for d in [64, 128, 128, 256, 256, 512, 512, 512, 512])
    assert att == pytest.approx(exact)
    assert 1 / att == pytest.approx(5.9 * 4.2**2 * 2.9**2 * 2.1**4, rel=0.02)  # the paper's 1.7e4
    assert 1.6e4 < 1 / att < 1.8e4
    # Fixed-std report: attenuation() with std=None reads the rows' own stds.
    fixed = initialize(model, scheme="gaussian", std=0.01)
    assert fixed.attenuation("conv2", "conv10") == pytest.approx(att)
    # Forward (Eq. 9) uses n = k²c: conv2..conv10 see c = 64, 64, 128, 128, 256, 256, 512, 512, 512.
    fwd = math.prod(0.01 * math.sqrt(9 * c / 2) for c in [64, 64, 128, 128, 256, 256, 512, 512, 512])
    assert fixed.attenuation("conv2", "conv10", direction="forward") == pytest.approx(fwd)


# (n, Var[w], a) of a made-up stack: He for ReLU, a fixed small std behind a PReLU, no rectifier
_STACK = [(576, 2 / 576, 0.0), (1152, 1e-4, 0.25), (100, 0.5, None)]


def _chain_by_hand(layers: list[tuple[float, float, float | None]], start: float) -> list[float]:
    values = [start]
    for n, var_w, a in layers:
        slope = 1.0 if a is None else a  # no rectifier: the linear case
        values.append(values[-1] * 0.5 * (1 + slope * slope) * n * var_w)
    return values


def test_variance_chain_is_the_running_product_of_eq9_and_eq13() -> None:
    chain = variance_chain(_STACK, start=3.0)
    assert chain == pytest.approx(_chain_by_hand(_STACK, 3.0), rel=1e-12)
    # He keeps the scale, ½·1.0625·1152·1e-4 = 0.0612, the linear layer 100·0.5 = 50
    assert chain == pytest.approx([3.0, 3.0, 3.0 * 0.0612, 3.0 * 0.0612 * 50], rel=1e-12)
    assert variance_chain([]) == [1.0]


def test_attenuation_is_the_square_root_of_the_chain() -> None:
    shapes = [(8, 3, 3, 3), (16, 8, 3, 3), (10, 16)]
    model = nn.Sequential(nn.Conv2d(3, 8, 3), PReLU(8), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Linear(16, 10))
    report = initialize(model, scheme="gaussian", std=0.05, generator=torch.Generator().manual_seed(0))
    assert [r.shape for r in report] == shapes
    backward = [(72.0, 0.05**2, 0.25), (144.0, 0.05**2, 0.0), (10.0, 0.05**2, None)]
    forward = [(27.0, 0.05**2, None), (72.0, 0.05**2, 0.25), (16.0, 0.05**2, 0.0)]
    assert report.attenuation("0", "4") == pytest.approx(math.sqrt(_chain_by_hand(backward, 1.0)[-1]))
    fwd = report.attenuation("0", "4", direction="forward")
    assert fwd == pytest.approx(math.sqrt(_chain_by_hand(forward, 1.0)[-1]))
    assert report.attenuation("2", "2", std=0.1) == pytest.approx(math.sqrt(0.5 * 144 * 0.01))


def test_attenuation_errors_and_suffix_names() -> None:
    model = nn.Sequential(OrderedDict(features=_vgg_b()))
    report = initialize(model, generator=torch.Generator().manual_seed(0))
    assert report.index("conv3") == 2 and report["features.conv3"].name == "features.conv3"
    assert report.index("3") == 2 and report.attenuation("2", "10") == report.attenuation("conv2", "conv10")
    with pytest.raises(ValueError, match="layer number 11 is out of range"):
        report.index("11")
    unnamed = initialize(
        nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    )
    assert [r.name for r in unnamed] == ["0", "2", "4"]
    assert unnamed.index("4") == 2 and unnamed.index("3") == 2  # a name first, else a number
    with pytest.raises(ValueError, match="no weight layer named 'conv11'"):
        report.attenuation("conv2", "conv11")
    with pytest.raises(ValueError, match="comes after"):
        report.attenuation("conv5", "conv2")
    with pytest.raises(ValueError, match="direction"):
        report.attenuation("conv2", "conv5", direction="sideways")


def test_report_table_markdown_json() -> None:
    report = initialize(_net(nn.ReLU()), generator=torch.Generator().manual_seed(0))
    text = str(report)
    lines = text.splitlines()
    assert lines[0].startswith("init: scheme=he mode=fan_out")
    assert "16x3x3x3" in text and "fc1" in text
    header, body = lines[1], lines[3:]
    assert len(body) == len(report)
    for line, row in zip(body, report, strict=True):  # columns line up under the header
        assert line.index(row.kind) == header.index("kind")
        assert line.index("he fan_out") == header.index("rule")
    md = report.to_markdown().splitlines()
    assert md[0].startswith("| layer | kind |") and len(md) == 2 + len(report)
    data = json.loads(report.to_json())
    assert data["scheme"] == "he" and data["layers"][0]["shape"] == [16, 3, 3, 3]
    assert data["layers"][0]["std"] == pytest.approx(report[0].std)


# --- transposed convolutions: weight (in, out/groups, *k), each response sums (in/g)·k²/stride² terms ---


@pytest.mark.parametrize(("stride", "groups"), [(1, 1), (2, 1), (2, 4)])
def test_transposed_conv_fans_match_the_measured_variance_laws(stride: int, groups: int) -> None:
    """Eq. 7 and Eq. 12 measured on a transposed conv, with the fans `calculate_fans(module)` gives it:
    n = (in/g)·k²/stride², n̂ = (out/g)·k². Kernel 4 at stride 2 and padding 1 (the usual 2x
    upsampling) puts exactly k/stride taps on every interior output; borders are cut away."""
    gen = torch.Generator().manual_seed(0)
    up = nn.ConvTranspose2d(32, 64, 4, stride=stride, padding=1, groups=groups, bias=False)
    gaussian_(up.weight, 0.1, gen)
    var_w = up.weight.var().item()
    n, n_hat = calculate_fans(up)
    assert (n, n_hat) == (32 / groups * 16 / stride**2, 64 / groups * 16)
    x = torch.randn(16, 32, 16, 16, generator=gen, requires_grad=True)
    y = up(x)
    r = torch.randn(y.shape, generator=gen)
    (gx,) = torch.autograd.grad(y, x, r)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    assert y[inner].var().item() == pytest.approx(n * var_w * x.pow(2).mean().item(), rel=0.05)
    assert gx[inner].var().item() == pytest.approx(n_hat * var_w * r.var().item(), rel=0.05)


def test_initialize_covers_transposed_convs() -> None:
    up = nn.ConvTranspose2d(8, 16, 4, stride=2, padding=1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), up, nn.ReLU(), nn.Conv2d(16, 4, 3))
    report = initialize(model, mode="fan_in")
    row = report["2"]
    assert row.kind == "ConvTranspose2d" and (row.fan_in, row.fan_out) == (8 * 16 / 4, 16 * 16)
    assert row.std == pytest.approx(math.sqrt(2 / 32))
    assert torch.count_nonzero(up.bias) == 0
    report = initialize(model, mode="fan_out")
    assert report["2"].std == pytest.approx(math.sqrt(2 / 256))


def test_calculate_fans_of_a_transposed_conv_module() -> None:
    up = nn.ConvTranspose2d(8, 16, 4, stride=2, padding=1)
    assert calculate_fans(up) == (8 * 16 / 4, 16 * 16)
    grouped = nn.Conv2d(8, 16, 3, groups=2)
    assert calculate_fans(grouped) == calculate_fans(grouped.weight, 2) == (4 * 9, 8 * 9)


# --- activations initialize does not know: linear only for nothing or Identity -----------------------


@pytest.mark.parametrize("act", [nn.SiLU(), nn.GELU(), nn.ELU(), nn.Tanh()], ids=lambda m: type(m).__name__)
def test_initialize_warns_on_an_activation_it_does_not_know(act: nn.Module) -> None:
    model = nn.Sequential(nn.Linear(8, 8), act, nn.Linear(8, 8), type(act)(), nn.Linear(8, 8))
    with pytest.warns(UserWarning, match=type(act).__name__) as caught:
        report = initialize(model)
    assert len(caught) == 1 and "0, 2" in str(caught[0].message)  # once, naming the layers
    assert report[0].a == report[1].a == 1.0  # still taken as linear, but said so


@pytest.mark.parametrize("between", [[], [nn.Identity()], [nn.ReLU()], [nn.Dropout(), PReLU(8)]])
def test_initialize_is_silent_for_nothing_identity_and_rectifiers(between: list[nn.Module]) -> None:
    import warnings

    model = nn.Sequential(nn.Linear(8, 8), *between, nn.Linear(8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        initialize(model)


# --- where we differ from torch on purpose (the README's table) ------------------------------------


@pytest.mark.parametrize("fill", [xavier_normal_, xavier_uniform_])
@pytest.mark.parametrize("shape", [(0, 3), (0, 0)])
def test_xavier_on_a_zero_element_tensor_warns_and_returns_it(fill, shape) -> None:
    t = torch.empty(shape)
    with pytest.warns(UserWarning, match="zero-element"):
        assert fill(t) is t


@pytest.mark.parametrize("fill", [he_normal_, he_uniform_])
def test_he_refuses_a_bool_slope_even_for_relu(fill) -> None:
    with pytest.raises(ValueError, match="True"):
        fill(torch.empty(4, 4), a=True, nonlinearity="relu")
