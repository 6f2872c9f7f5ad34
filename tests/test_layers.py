from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rectifiers.activations import PReLU
from rectifiers.layers import ACTIVATIONS, SpatialPyramidPool2d, conv_act, make_activation


def spp_reference(x: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """SPP written out bin by bin from the documented rule: bin i spans floor(i·H/n) .. ceil((i+1)·H/n)."""
    n_batch, channels, height, width = x.shape
    out = []
    for n in levels:
        level = torch.empty(n_batch, channels, n, n, dtype=x.dtype)
        for i in range(n):
            r0, r1 = math.floor(i * height / n), math.ceil((i + 1) * height / n)
            for j in range(n):
                c0, c1 = math.floor(j * width / n), math.ceil((j + 1) * width / n)
                level[:, :, i, j] = x[:, :, r0:r1, c0:c1].amax(dim=(2, 3))
        out.append(level.flatten(1))
    return torch.cat(out, dim=1)


def test_spp_hand_computed_3x3() -> None:
    x = torch.arange(9.0).view(1, 1, 3, 3)  # [[0,1,2],[3,4,5],[6,7,8]]
    # level 2 bins: rows/cols [0, 2) and [1, 3), overlapping in the middle; level 1: everything
    expected = torch.tensor([[4.0, 5.0, 7.0, 8.0, 8.0]])
    torch.testing.assert_close(SpatialPyramidPool2d((2, 1))(x), expected)


def test_spp_hand_computed_non_square() -> None:
    x = torch.tensor([[[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]])  # 2×3
    # level 2: rows [0,1), [1,2); cols [0,2), [1,3) -> [[1, 2], [4, 5]]
    # level 3: rows [0,1), [0,2), [1,2) (H=2 < 3 bins); cols [0,1), [1,2), [2,3)
    expected = torch.tensor([[1.0, 2.0, 4.0, 5.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 3.0, 4.0, 5.0]])
    torch.testing.assert_close(SpatialPyramidPool2d((2, 3))(x), expected)


def test_spp_1x1_map_repeats_the_value() -> None:
    x = torch.tensor([1.5, -2.0]).view(1, 2, 1, 1)
    out = SpatialPyramidPool2d((7, 3, 2, 1))(x)
    assert out.shape == (1, 2 * 63)
    # channel-major within a level: the first 49 values are channel 0, the next 49 channel 1
    torch.testing.assert_close(out[0, :49], torch.full((49,), 1.5))
    torch.testing.assert_close(out[0, 49:98], torch.full((49,), -2.0))


def test_spp_channel_major_layout() -> None:
    x = torch.randn(2, 3, 5, 5)
    out = SpatialPyramidPool2d((2,))(x).view(2, 3, 2, 2)
    torch.testing.assert_close(out[:, 1], torch.nn.functional.adaptive_max_pool2d(x[:, 1:2], 2)[:, 0])


@pytest.mark.parametrize("levels", [(7, 3, 2, 1), (6, 3, 2, 1), (5,), (4, 2, 1)])
@pytest.mark.parametrize(
    "size", [(1, 1), (2, 2), (3, 7), (5, 5), (6, 4), (13, 13), (14, 14), (18, 18), (23, 9)]
)
def test_spp_matches_reference_and_size(levels: tuple[int, ...], size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    spp = SpatialPyramidPool2d(levels)
    out = spp(x)
    assert out.shape == (2, spp.output_features(3)) == (2, 3 * sum(n * n for n in levels))
    torch.testing.assert_close(out, spp_reference(x, levels))


def test_spp_channels_last_and_grad() -> None:
    x = torch.randn(2, 4, 9, 11).contiguous(memory_format=torch.channels_last).requires_grad_()
    out = SpatialPyramidPool2d()(x)
    torch.testing.assert_close(out, spp_reference(x.detach(), (7, 3, 2, 1)))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_spp_output_features_and_repr() -> None:
    spp = SpatialPyramidPool2d((7, 3, 2, 1))
    assert spp.num_bins == 63
    assert spp.output_features(512) == 32256  # model A's fc1 input
    assert SpatialPyramidPool2d((6, 3, 2, 1)).output_features(256) == 12800  # Table 1's fc1 input
    assert "levels=(7, 3, 2, 1)" in repr(spp)


@pytest.mark.parametrize("levels", [(), (0,), (3, -1), (2.5,), (True,)])
def test_spp_bad_levels(levels: tuple) -> None:
    with pytest.raises(ValueError, match="level"):
        SpatialPyramidPool2d(levels)


def test_spp_bad_rank() -> None:
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        SpatialPyramidPool2d()(torch.randn(3, 4, 4))


def test_make_activation_kinds() -> None:
    assert isinstance(make_activation("relu", 8), nn.ReLU)
    channelwise = make_activation("prelu", 8)
    assert isinstance(channelwise, PReLU) and channelwise.weight.shape == (8,)
    torch.testing.assert_close(channelwise.weight.detach(), torch.full((8,), 0.25))
    shared = make_activation("prelu_shared", 8)
    assert isinstance(shared, PReLU) and shared.weight.shape == (1,)
    leaky = make_activation("leaky_relu", 8)
    assert isinstance(leaky, nn.LeakyReLU) and leaky.negative_slope == 0.01
    assert set(ACTIVATIONS) == {"relu", "prelu", "prelu_shared", "leaky_relu"}


def test_make_activation_errors() -> None:
    with pytest.raises(ValueError, match="unknown activation 'gelu'.*relu, prelu"):
        make_activation("gelu", 4)
    with pytest.raises(ValueError, match="at least 1 channel"):
        make_activation("prelu", 0)


@pytest.mark.parametrize(
    ("act", "kind"),
    [(nn.SiLU, nn.SiLU), (nn.GELU, nn.GELU), (lambda: nn.LeakyReLU(0.2), nn.LeakyReLU)],
    ids=["SiLU", "GELU", "factory"],
)
def test_make_activation_takes_a_class_or_factory(act, kind) -> None:
    made = make_activation(act, 8)
    assert isinstance(made, kind)
    assert make_activation(act, 8) is not made  # a fresh module per layer


@pytest.mark.parametrize("cls", [PReLU, nn.PReLU])
def test_make_activation_gives_a_prelu_class_the_channels(cls) -> None:
    made = make_activation(cls, 8)
    assert type(made) is cls and made.weight.shape == (8,)


def test_make_activation_refuses_what_builds_no_module() -> None:
    with pytest.raises(TypeError, match="int"):
        make_activation(lambda: 3, 8)


def test_make_activation_save_output_reaches_our_prelu() -> None:
    assert make_activation("prelu", 8, save_output=True).save_output
    assert not make_activation("prelu", 8).save_output
    assert make_activation(PReLU, 8, save_output=True).save_output


def test_conv_act() -> None:
    conv, act = conv_act(3, 5, 2, padding=1, act="prelu")
    assert conv.kernel_size == (2, 2) and conv.padding == (1, 1) and conv.bias is not None
    assert act.weight.shape == (5,)
    assert act(conv(torch.randn(1, 3, 4, 4))).shape == (1, 5, 5, 5)


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (14, 14), (23, 9)])
def test_spp_export_path_equals_native(size: tuple[int, int]) -> None:
    from rectifiers.layers import _bin_max_2d

    x = torch.randn(2, 3, *size)
    for n in (7, 6, 3, 2, 1):
        torch.testing.assert_close(_bin_max_2d(x, n), torch.nn.functional.adaptive_max_pool2d(x, n))


def test_spp_onnx_export_dynamic_size(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    spp = SpatialPyramidPool2d((7, 3, 2, 1)).eval()
    path = tmp_path / "spp.onnx"
    height, width = torch.export.Dim("h", min=1, max=256), torch.export.Dim("w", min=1, max=256)
    torch.onnx.export(
        spp,
        (torch.randn(2, 3, 14, 14),),
        path,
        dynamo=True,
        input_names=["x"],
        dynamic_shapes={"x": {2: height, 3: width}},
        verbose=False,
    )
    session = ort.InferenceSession(str(path))
    for size in [(14, 14), (5, 9), (1, 1), (40, 23)]:
        x = torch.randn(2, 3, *size)
        torch.testing.assert_close(torch.from_numpy(session.run(None, {"x": x.numpy()})[0]), spp(x))
