"""PReLU (paper Eq. 1-3) against torch.nn.functional.prelu, autograd checks and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rectifiers.activations import PReLU, activation_slope, prelu, prelu_reference

SHAPES = {1: (7,), 2: (5, 6), 3: (3, 4, 5), 4: (2, 3, 5, 4), 5: (2, 3, 4, 3, 2)}


def _layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "contiguous":
        return x.contiguous()
    if layout == "noncontiguous":
        # Every other element of a twice-as-long last axis: same values, strided storage.
        wide = torch.stack([x, torch.full_like(x, 99.0)], dim=-1).flatten(-2)
        out = wide[..., ::2]
        assert not out.is_contiguous() and torch.equal(out, x)
        return out
    if layout == "channels_last":
        fmt = {4: torch.channels_last, 5: torch.channels_last_3d}[x.dim()]
        return x.contiguous(memory_format=fmt)
    raise AssertionError(layout)


def _torch_prelu(x: torch.Tensor, w: torch.Tensor, dim: int) -> torch.Tensor:
    """torch's prelu has its channels on dim 1; move ours there and back."""
    if dim in (1, -x.dim() + 1) or x.dim() < 2:
        return F.prelu(x, w)
    return F.prelu(x.movedim(dim, 1), w).movedim(1, dim)


def _run(fn, x, w, g):
    x = x.detach().requires_grad_(True)
    w = w.detach().requires_grad_(True)
    y = fn(x, w)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    return y, gx, gw


CASES = [
    (rank, dim, layout, shared)
    for rank in SHAPES
    for dim in (1, -1)
    for layout in ("contiguous", "noncontiguous", "channels_last")
    for shared in (False, True)
    if not (layout == "channels_last" and rank < 4)
    if not (rank == 1 and not shared)  # torch's prelu takes only a shared slope on 1-D input
]


@pytest.mark.parametrize(("rank", "dim", "layout", "shared"), CASES)
def test_matches_torch_prelu_fp32(rank: int, dim: int, layout: str, shared: bool) -> None:
    gen = torch.Generator().manual_seed(rank * 10 + dim)
    x = _layout(torch.randn(SHAPES[rank], generator=gen), layout)
    channels = 1 if shared else x.shape[dim]
    w = torch.rand(channels, generator=gen) * 0.5
    g = torch.randn(x.shape, generator=gen)
    y, gx, gw = _run(lambda a, b: prelu(a, b, dim), x, w, g)
    y_ref, gx_ref, gw_ref = _run(lambda a, b: _torch_prelu(a, b, dim), x.contiguous(), w, g)
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gx, gx_ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(gw, gw_ref, atol=1e-5, rtol=1e-6)  # a sum over many positions
    assert y.dtype == x.dtype and y.shape == x.shape
    if layout == "channels_last":
        fmt = torch.channels_last if rank == 4 else torch.channels_last_3d
        assert y.is_contiguous(memory_format=fmt) and not y.is_contiguous()


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_matches_torch_prelu_bf16(layout: str) -> None:
    gen = torch.Generator().manual_seed(0)
    x = _layout(torch.randn(4, 8, 6, 6, generator=gen), layout).bfloat16()
    w = (torch.rand(8, generator=gen) * 0.5).bfloat16()
    g = torch.randn(x.shape, generator=gen).bfloat16()
    y, gx, gw = _run(prelu, x, w, g)
    y_ref, gx_ref, gw_ref = _run(F.prelu, x, w, g)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, y_ref, atol=0, rtol=0)  # the same single rounding of a · x
    torch.testing.assert_close(gx, gx_ref, atol=0, rtol=0)
    torch.testing.assert_close(gw.float(), gw_ref.float(), atol=0.05, rtol=0.02)  # summation order


def test_float32_slope_on_bf16_input_keeps_input_dtype() -> None:
    x = torch.randn(2, 3, 4).bfloat16().requires_grad_(True)
    w = torch.full((3,), 0.25, requires_grad=True)
    y = prelu(x, w)
    assert y.dtype == torch.bfloat16
    y.sum().backward()
    assert w.grad is not None and w.grad.dtype == torch.float32


def test_gradients_follow_eq2_eq3_by_hand() -> None:
    """∂E/∂a_c sums g·y over every position of channel c where y <= 0; ∂E/∂y is g or a·g."""
    x = torch.tensor([[[1.0, -2.0], [0.0, -1.0]], [[-3.0, 4.0], [-0.5, 2.0]]]).requires_grad_(True)
    w = torch.tensor([0.1, 0.2], requires_grad=True)  # channels on dim 1 of shape (2, 2, 2)
    g = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
    gx, gw = torch.autograd.grad(prelu(x, w), (x, w), g)
    # channel 0: positions x[:, 0, :] = [1, -2], [-3, 4] -> negatives -2 (g 2), -3 (g 5)
    # channel 1: positions x[:, 1, :] = [0, -1], [-0.5, 2] -> non-positives 0 (g 3), -1 (g 4), -0.5 (g 7)
    torch.testing.assert_close(gw, torch.tensor([2 * -2.0 + 5 * -3.0, 3 * 0.0 + 4 * -1.0 + 7 * -0.5]))
    expect_gx = torch.tensor([[[1.0, 0.2], [0.6, 0.8]], [[0.5, 6.0], [1.4, 8.0]]])
    torch.testing.assert_close(gx, expect_gx)
    # Shared slope: one sum over all channels and positions.
    ws = torch.tensor([0.1], requires_grad=True)
    (gws,) = torch.autograd.grad(prelu(x, ws), ws, g)
    torch.testing.assert_close(gws, gw.sum().reshape(1))


GRADCHECK_CASES = [
    ("contiguous", (2, 3, 4, 5), 1, 3),
    ("noncontiguous", (2, 3, 4, 5), 1, 3),
    ("channels_last", (2, 3, 4, 5), 1, 3),
    ("channels_last", (2, 3, 2, 2, 3), 1, 3),
    ("noncontiguous", (2, 4, 3), -1, 3),
    ("contiguous", (3, 4, 3), -1, 3),  # x.shape[1] != x.shape[-1] ...
    ("contiguous", (2, 3, 5, 3), -1, 3),  # ... and x.shape[1] == x.shape[-1]: dim must decide
    ("channels_last", (2, 3, 5, 3), -1, 3),
    ("contiguous", (2, 3, 5, 3), 1, 1),
    ("contiguous", (6,), 1, 6),
]


@pytest.mark.parametrize("impl", [prelu, prelu_reference], ids=["prelu", "reference"])
@pytest.mark.parametrize(("layout", "shape", "dim", "channels"), GRADCHECK_CASES)
def test_gradcheck_and_gradgradcheck_float64(
    impl, layout: str, shape: tuple, dim: int, channels: int
) -> None:
    gen = torch.Generator().manual_seed(1)
    # Keep inputs away from the kink at 0, where finite differences are meaningless.
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = torch.where(x.abs() < 0.1, x.sign() * 0.1 + x, x)
    x = _layout(x, layout).requires_grad_(True)
    w = (torch.rand(channels, generator=gen, dtype=torch.float64) * 0.5).requires_grad_(True)
    fn = lambda a, b: impl(a, b, dim)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_shape1_equals_shape_last_uses_the_named_axis() -> None:
    """With shape[1] == shape[-1], dim=-1 must scale along the last axis, not dim 1."""
    x = -torch.ones(1, 3, 2, 3)
    w = torch.tensor([1.0, 2.0, 3.0])
    last = prelu(x, w, dim=-1)
    torch.testing.assert_close(last[0, 0, 0], -w)
    torch.testing.assert_close(last[0, :, 0, 0], -torch.ones(3))
    torch.testing.assert_close(prelu(x, w, dim=1)[0, :, 0, 0], -w)


def test_zero_input_takes_the_slope_branch_like_torch() -> None:
    x = torch.zeros(2, 3, requires_grad=True)
    w = torch.tensor([0.3, 0.4, 0.5], requires_grad=True)
    g = torch.ones(2, 3)
    ours = torch.autograd.grad(prelu(x, w), (x, w), g)
    ref = torch.autograd.grad(F.prelu(x, w), (x, w), g)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(ours[0], w.detach().expand(2, 3))


REFERENCE_CASES = [
    ((4, 5, 3), 1, 5, "contiguous", torch.float32),
    ((4, 5, 3), -1, 3, "noncontiguous", torch.float32),
    ((2, 3, 4, 3), -1, 3, "channels_last", torch.float32),
    ((2, 3, 4, 3, 2), 1, 1, "channels_last", torch.float32),
    ((2, 6, 4, 4), 1, 6, "channels_last", torch.bfloat16),
    ((9,), 1, 9, "contiguous", torch.float64),
]


@pytest.mark.parametrize(("shape", "dim", "channels", "layout", "dtype"), REFERENCE_CASES)
def test_prelu_equals_the_reference_path(shape, dim, channels, layout, dtype) -> None:
    """`prelu` (ATen's fused kernel) gives the values and gradients of Eq. 1 written out."""
    gen = torch.Generator().manual_seed(2)
    x = _layout(torch.randn(shape, generator=gen, dtype=torch.float64), layout).to(dtype)
    w = (torch.rand(channels, generator=gen) * 0.5).to(dtype)
    g = torch.randn(shape, generator=gen).to(dtype)
    y, gx, gw = _run(lambda a, b: prelu(a, b, dim), x, w, g)
    y_ref, gx_ref, gw_ref = _run(lambda a, b: prelu_reference(a, b, dim), x, w, g)
    torch.testing.assert_close(y, y_ref, atol=0, rtol=0)
    torch.testing.assert_close(gx, gx_ref, atol=0, rtol=0)
    tol = 0.02 if dtype == torch.bfloat16 else 1e-6  # the slope gradient is a sum: order may differ
    torch.testing.assert_close(gw, gw_ref, atol=tol, rtol=tol)
    assert y.stride() == y_ref.stride()


@pytest.mark.parametrize("impl", [prelu, prelu_reference], ids=["prelu", "reference"])
def test_torch_compile_traces_without_graph_breaks(impl) -> None:
    w = torch.rand(4, requires_grad=True)
    x = torch.randn(2, 3, 3, 4).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    compiled = torch.compile(lambda a, b: impl(a, b, -1), backend="aot_eager", fullgraph=True)
    y = compiled(x, w)
    torch.testing.assert_close(y, impl(x, w, -1))
    (gw,) = torch.autograd.grad(y.sum(), w)
    torch.testing.assert_close(gw, torch.autograd.grad(impl(x, w, -1).sum(), w)[0])


def test_module_state_dict_round_trip_with_torch_prelu() -> None:
    ours = PReLU(6, init=0.1)
    with torch.no_grad():
        ours.weight.copy_(torch.linspace(-0.2, 0.7, 6))
    theirs = nn.PReLU(6)
    theirs.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == ["weight"]
    x = torch.randn(3, 6, 4)
    torch.testing.assert_close(theirs(x), ours(x))
    back = PReLU(6)
    back.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(back.weight, ours.weight)
    shared = PReLU()
    shared.load_state_dict(nn.PReLU().state_dict())
    assert shared.weight.shape == (1,)


def test_module_defaults_channels_last_dim_and_repr() -> None:
    m = PReLU()
    assert m.weight.shape == (1,) and m.weight.item() == 0.25  # paper Sec. 2.1
    nhwc = PReLU(5, init=0.5, dim=-1)
    x = -torch.ones(2, 3, 4, 5)
    torch.testing.assert_close(nhwc(x), -0.5 * torch.ones(2, 3, 4, 5))
    assert repr(nhwc) == "PReLU(num_parameters=5, init=0.5, dim=-1)"
    assert PReLU(3, dtype=torch.float64).weight.dtype == torch.float64


@pytest.mark.parametrize("bad", [0, -2, 2.0, True])
def test_module_rejects_bad_num_parameters(bad) -> None:
    with pytest.raises(ValueError, match="num_parameters"):
        PReLU(bad)


def test_errors_name_the_problem() -> None:
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match=r"got 4 slopes but the input has 3 channels"):
        prelu(x, torch.rand(4))
    with pytest.raises(ValueError, match=r"got 3 slopes but the input has 4 channels on dim 2"):
        prelu(x, torch.rand(3), dim=-1)
    with pytest.raises(ValueError, match=r"dim=3 is out of range for a 3-D input"):
        prelu(x, torch.rand(3), dim=3)
    with pytest.raises(ValueError, match=r"dim=-4 is out of range"):
        prelu(x, torch.rand(1), dim=-4)
    with pytest.raises(ValueError, match="floating-point"):
        prelu(torch.ones(2, 3, dtype=torch.int64), torch.rand(3))
    with pytest.raises(ValueError, match="weight must be 0-D .* or 1-D"):
        prelu(x, torch.rand(3, 1))
    with pytest.raises(ValueError, match="weight must be a floating-point"):
        prelu(x, torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="0-dim input"):
        prelu(torch.tensor(1.0), torch.rand(2))
    torch.testing.assert_close(prelu(torch.tensor(-2.0), torch.tensor([0.5])), torch.tensor(-1.0))


def test_activation_slope() -> None:
    assert activation_slope(nn.ReLU()) == 0.0
    assert activation_slope(nn.LeakyReLU(0.01)) == 0.01
    assert activation_slope(PReLU(4)) == 0.25
    assert activation_slope(nn.PReLU(init=0.3)) == pytest.approx(0.3)
    m = PReLU(2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([0.1, 0.5]))
    assert activation_slope(m) == pytest.approx(0.3)  # the current mean, not the init
    assert activation_slope(nn.RReLU(0.1, 0.3)) == pytest.approx(0.2)
    with torch.device("meta"):
        assert activation_slope(PReLU(8, init=0.2)) == pytest.approx(0.2)
    for other in (nn.Tanh(), nn.Sigmoid(), nn.Conv2d(1, 1, 1), nn.Identity()):
        assert activation_slope(other) is None
