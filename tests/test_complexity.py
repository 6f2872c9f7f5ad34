from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rectifiers.complexity import ComplexityReport, complexity
from rectifiers.models import create_model

# Table 3 of the paper (v1): depth (conv + fc) and complexity (multiply-adds, ×10¹⁰) at 224 px
TABLE3 = {"vgg19": (19, 1.96), "model_a": (19, 1.90), "model_b": (22, 2.32), "model_c": (22, 5.30)}


def meta_model(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, init=False, **kwargs)


@pytest.mark.parametrize("name", sorted(TABLE3))
def test_table3_complexity_and_depth(name: str) -> None:
    depth, macs = TABLE3[name]
    report = complexity(meta_model(name))
    assert report.depth == depth
    assert report.total_macs / 1e10 == pytest.approx(macs, rel=0.02)


def test_model_a_by_hand() -> None:
    # conv1 7×7/2 96 at 112², stages at 56/28/14 (first conv of each stage changes the width), fc
    by_hand = (
        112 * 112 * 96 * 7 * 7 * 3
        + 56 * 56 * 256 * 9 * (96 + 4 * 256)
        + 28 * 28 * 512 * 9 * (256 + 4 * 512)
        + 14 * 14 * 512 * 9 * (5 * 512)
        + 63 * 512 * 4096
        + 4096 * 4096
        + 4096 * 1000
    )
    assert complexity(meta_model("model_a")).total_macs == by_hand


@pytest.mark.parametrize(
    ("name", "slopes", "params_m"),
    [
        ("model_a", 14_688, 178.0),
        ("model_b", 15_968, 183.3),
        ("model_c", 20_576, 330.6),
        ("net14", 10_304, 75.0),
    ],
)
def test_prelu_counts_and_parameters(name: str, slopes: int, params_m: float) -> None:
    net = meta_model(name, act="prelu")
    assert net.num_slopes() == slopes  # channel-wise: every conv's filters + fc1 + fc2 (4096 each)
    report = complexity(net)
    assert report.total_params / 1e6 == pytest.approx(params_m, abs=0.1)
    assert report.other_params == slopes


def test_net14_map_sizes_at_224() -> None:
    report = complexity(meta_model("net14"))
    sizes = {
        layer.name.split(".")[-1]: layer.output_shape[-1] for layer in report.layers if layer.kind == "conv"
    }
    assert sizes["conv1"] == 109
    assert [sizes[f"conv2_{i}"] for i in range(1, 5)] == [37, 36, 37, 36]
    assert [sizes[f"conv3_{i}"] for i in range(1, 7)] == [19, 18] * 3
    assert report.depth == 14


def test_small_layers_by_hand() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # 5·5·4 outputs × 27 weights
        nn.Conv2d(4, 6, 1, groups=2),  # 5·5·6 outputs × 2 weights
        nn.ConvTranspose2d(6, 2, 2, stride=2),  # 6·5·5 inputs × 2 filters × 4 taps
        nn.Flatten(),
        nn.Linear(2 * 10 * 10, 3),
    )
    report = complexity(model, (3, 5, 5))
    assert [layer.macs for layer in report.layers] == [2700, 300, 1200, 600]
    assert [layer.kind for layer in report.layers] == ["conv", "conv", "conv", "fc"]
    assert report.layers[2].output_shape == (2, 10, 10)
    assert report.total_params == sum(p.numel() for p in model.parameters())
    assert report.other_params == 0 and report.depth == 4


def test_linear_on_sequences() -> None:
    report = complexity(nn.Linear(8, 5), (1, 7, 8))  # fc on the last axis: 7 rows of 8 features
    assert report.total_macs == 7 * 8 * 5


def test_model_left_untouched() -> None:
    net = create_model("net14", stem="small", width=0.125, fc_width=8, num_classes=3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    report = complexity(net, 28)
    assert report.input_size == (3, 28, 28)
    assert net.training
    assert not any(m._forward_hooks for m in net.modules())
    for key, value in net.state_dict().items():
        assert value.device.type == "cpu"
        torch.testing.assert_close(value, before[key])


def test_report_outputs() -> None:
    report = complexity(meta_model("vgg_b", act="prelu"))
    text = str(report)
    assert "features.conv1_1" in text and "head.fc3" in text and "depth 13" in text
    assert f"{report.total_macs:,}" in text
    md = report.to_markdown()
    assert md.startswith("| layer |") and "| total |" in md
    data = json.loads(json.dumps(report.to_dict()))
    assert data["depth"] == 13 and data["total_macs"] == report.total_macs
    assert data["layers"][0]["output_shape"] == [64, 224, 224]
    assert isinstance(report, ComplexityReport)


@pytest.mark.parametrize("size", [(0, 4, 4), (3, -1, 4), "big", (3, 4.5, 4)])
def test_bad_input_size(size: object) -> None:
    with pytest.raises(ValueError, match="input_size"):
        complexity(nn.Conv2d(3, 4, 3), size)  # type: ignore[arg-type]


def test_input_size_needs_channels_without_conv() -> None:
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        complexity(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), (2, 2))


def test_input_too_small() -> None:
    with pytest.raises(ValueError, match="cannot run on an input of size"):
        complexity(meta_model("vgg19"), 8)
