"""The fused CPU PReLU against the reference path (Eq. 1-3), its fallbacks and its memory use."""

from __future__ import annotations

import gc
import math
import weakref
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rectifiers import activations, prelu_fast, prelu_kernel
from rectifiers.activations import PReLU, prelu, prelu_reference
from rectifiers.models import create_model

needs_kernel = pytest.mark.skipif(prelu_kernel.load() is None, reason="no C++ compiler: the kernel is absent")

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def _grads(fn, x, w, g):
    x = x.detach().requires_grad_(True)
    w = w.detach().requires_grad_(True)
    y = fn(x, w)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    return y, gx, gw


def _slope_tol(dtype: torch.dtype) -> dict[str, float]:
    # The slope gradient is a sum: its order differs; bfloat16's reference also rounds every g·x.
    return {
        torch.float64: {"atol": 1e-12, "rtol": 1e-12},
        torch.float32: {"atol": 1e-4, "rtol": 1e-5},
        torch.bfloat16: {"atol": 0.05, "rtol": 0.02},
    }[dtype]


CASES = [
    # shape, dim, layout, slopes: "pos" (backward from the output), "mixed" (some <= 0: from x), "shared"
    ((4, 6, 5, 7), 1, "contiguous", "pos"),
    ((4, 6, 5, 7), 1, "channels_last", "pos"),
    ((4, 6, 5, 7), 1, "channels_last", "mixed"),
    ((4, 6, 5, 6), -1, "contiguous", "mixed"),  # shape[1] == shape[-1]: dim decides
    ((4, 6, 5, 6), -1, "channels_last", "pos"),
    ((3, 6, 4, 5), 1, "contiguous", "shared"),
    ((2, 5, 3, 4, 3), 1, "channels_last", "pos"),  # channels_last_3d
    ((9, 7), 1, "contiguous", "mixed"),  # fc outputs (N, C)
    ((3, 5, 8), -1, "contiguous", "pos"),  # (N, L, C)
    ((11,), 1, "contiguous", "pos"),
    ((3, 5, 97, 101), 1, "contiguous", "pos"),  # several chunks; runs cut at chunk edges
    ((3, 5, 97, 101), 1, "channels_last", "mixed"),
]


def _slopes(kind: str, n: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "shared":
        return torch.tensor([0.3])
    w = torch.rand(n, generator=gen) * 0.5 + 0.05
    if kind == "mixed":
        w[0], w[-1] = -0.2, 0.0
    return w


def _input(shape, layout, dtype, gen):
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
    return x.to(dtype)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize(("shape", "dim", "layout", "slopes"), CASES)
@pytest.mark.parametrize("save_output", [False, True], ids=["keep_input", "keep_output"])
def test_fused_equals_reference(shape, dim, layout, slopes, dtype, save_output) -> None:
    """Outputs and input gradients bit for bit; slope gradients up to summation order."""
    gen = torch.Generator().manual_seed(len(shape) * 7 + dim)
    x = _input(shape, layout, dtype, gen)
    n = x.shape[dim] if len(shape) > 1 else shape[0]
    w = _slopes(slopes, n, gen)
    g = torch.randn(shape, generator=gen).to(dtype)
    assert prelu_fast.can_fuse(x, w)
    y, gx, gw = _grads(lambda a, b: prelu(a, b, dim, save_output=save_output), x, w, g)
    y_ref, gx_ref, gw_ref = _grads(lambda a, b: prelu_reference(a, b, dim), x, w, g)
    torch.testing.assert_close(y, y_ref, atol=0, rtol=0)
    torch.testing.assert_close(gx, gx_ref, atol=0, rtol=0)
    torch.testing.assert_close(gw, gw_ref, **_slope_tol(dtype))
    assert y.stride() == x.stride() and gx.stride() == x.stride()
    assert gw.dtype == w.dtype and y.dtype == x.dtype


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("channels", [8, 16, 32, 48, 64, 128, 256])
@pytest.mark.parametrize("batch", [1, 7, 33])
def test_channels_last_rows_and_slope_gradient_accuracy(channels: int, batch: int, dtype) -> None:
    """Every row width of the channels_last loops (fixed-width groups and their last rows, tiled
    rows), with float32 slopes on the input's dtype as under autocast: outputs and input gradients
    bit for bit; the slope gradient (float32) within one rounding of the input's dtype per term of
    Eq. 2's sum, against that sum in float64."""
    gen = torch.Generator().manual_seed(channels * 100 + batch)
    x = _input((batch, channels, 5, 7), "channels_last", dtype, gen)
    w = torch.rand(channels, generator=gen) * 0.5 + 0.01  # not representable in bfloat16
    g = torch.randn(x.shape, generator=gen).to(dtype)
    y, gx, gw = _grads(prelu, x, w, g)
    y_ref, gx_ref, _ = _grads(prelu_reference, x, w, g)
    torch.testing.assert_close(y, y_ref, atol=0, rtol=0)
    torch.testing.assert_close(gx, gx_ref, atol=0, rtol=0)
    assert gw.dtype == torch.float32
    terms = (g.double() * x.double()).where(x.double() <= 0, 0)
    bound = terms.abs().sum((0, 2, 3)) * (2.0**-8 if dtype == torch.bfloat16 else 2.0**-22)
    assert ((gw.double() - terms.sum((0, 2, 3))).abs() <= bound).all()


@needs_kernel
@pytest.mark.parametrize("slope", [0.25, -0.5, 0.0])
def test_special_values(slope: float) -> None:
    """±0, ±inf and NaN go the way of Eq. 1 written with where(x > 0, ...)."""
    values = [0.0, -0.0, math.inf, -math.inf, math.nan, 1.5, -2.5, 1e-30, -1e-30]
    x = torch.tensor(values * 4).reshape(4, 1, 9)
    w = torch.tensor([slope])
    g = torch.linspace(-1, 1, x.numel()).reshape(x.shape)
    y, gx, _ = _grads(prelu, x, w, g)
    y_ref, gx_ref, _ = _grads(prelu_reference, x, w, g)
    torch.testing.assert_close(y, y_ref, atol=0, rtol=0, equal_nan=True)
    torch.testing.assert_close(gx, gx_ref, atol=0, rtol=0, equal_nan=True)
    assert torch.equal(torch.signbit(y), torch.signbit(y_ref))


@needs_kernel
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_same_result_for_any_thread_count(layout: str) -> None:
    """The slope gradient's chunks depend on the size only: bit-identical with 1 or 2 threads."""
    gen = torch.Generator().manual_seed(4)
    x = _input((8, 16, 40, 40), layout, torch.float32, gen)
    w = torch.rand(16, generator=gen)
    g = torch.randn(x.shape, generator=gen)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _grads(prelu, x, w, g)
        torch.set_num_threads(2)
        two = _grads(prelu, x, w, g)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        assert torch.equal(a, b)


@needs_kernel
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("slopes", ["pos", "mixed"])
def test_gradcheck_and_gradgradcheck_through_the_kernel(layout: str, slopes: str) -> None:
    """Double backward through both kinds of saved tensor (with save_output, the output for positive
    slopes; else the input)."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 3, 5, generator=gen, dtype=torch.float64)
    x = torch.where(x.abs() < 0.1, x.sign() * 0.1 + x, x)
    x = x.contiguous(memory_format=FORMATS[layout]).requires_grad_(True)
    w = _slopes(slopes, 4, gen).double().requires_grad_(True)
    assert prelu_fast.can_fuse(x, w)
    for save_output in (False, True):

        def fn(x, w, save_output=save_output):
            return prelu(x, w, save_output=save_output)

        assert torch.autograd.gradcheck(fn, (x, w))
        assert torch.autograd.gradgradcheck(fn, (x, w))


@needs_kernel
@pytest.mark.parametrize(
    ("save_output", "slope", "freed"),
    [(True, 0.25, True), (True, -0.25, False), (False, 0.25, False), (False, -0.25, False)],
)
def test_save_output_with_positive_slopes_keeps_the_output_not_the_input(save_output, slope, freed) -> None:
    """With save_output and every slope > 0 the backward needs only y (which the next layer keeps
    anyway): the input is freed as in a ReLU network. A slope <= 0 makes it keep the input; so does
    the default, as torch.nn.PReLU does."""
    w = torch.full((4,), slope, requires_grad=True)
    leaf = torch.randn(2, 4, 3, 3, requires_grad=True)
    x = leaf * 2.0  # a non-leaf activation, like a convolution's output
    ref = weakref.ref(x)
    y = prelu(x, w, save_output=save_output)
    del x
    gc.collect()
    assert (ref() is None) is freed
    y.sum().backward()
    torch.testing.assert_close(leaf.grad, torch.where(leaf > 0, 2.0, 2.0 * slope))


@needs_kernel
def test_modifying_a_kept_output_in_place_is_caught() -> None:
    x = torch.randn(2, 3, 4, requires_grad=True)
    y = prelu(x * 1.0, torch.full((3,), 0.25), save_output=True)
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_composite_path_where_the_kernel_does_not_apply() -> None:
    gen = torch.Generator().manual_seed(6)
    w = torch.rand(3, generator=gen)
    strided = torch.randn(2, 3, 8, generator=gen)[..., ::2]
    assert not prelu_fast.can_fuse(strided, w)  # not dense
    assert not prelu_fast.can_fuse(torch.randn(2, 3).half(), w.half())  # float16
    assert not prelu_fast.can_fuse(torch.randn(2, 3, device="meta"), w)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(torch.randn(2, 3), torch.ones(2, 3))
        assert not prelu_fast.can_fuse(dual, w)  # forward-mode AD
    y, gx, gw = _grads(prelu, strided, w, torch.ones(2, 3, 4))
    y_ref, gx_ref, gw_ref = _grads(prelu_reference, strided, w, torch.ones(2, 3, 4))
    for a, b in ((y, y_ref), (gx, gx_ref), (gw, gw_ref)):
        torch.testing.assert_close(a, b)


def test_forward_mode_ad_and_vmap() -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)
    w = torch.rand(3, generator=gen, dtype=torch.float64)
    xt, wt = torch.randn_like(x), torch.randn_like(w)
    tangents = []
    for fn in (prelu, prelu_reference):
        with torch.autograd.forward_ad.dual_level():
            dual = fn(torch.autograd.forward_ad.make_dual(x, xt), torch.autograd.forward_ad.make_dual(w, wt))
            tangents.append(torch.autograd.forward_ad.unpack_dual(dual).tangent)
    torch.testing.assert_close(tangents[0], tangents[1])
    batched = torch.func.vmap(lambda t: prelu(t, w, dim=0))(x)
    torch.testing.assert_close(batched, torch.stack([prelu_reference(t, w, dim=0) for t in x]))


@needs_kernel
@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
def test_jit_trace_records_the_aten_op() -> None:
    """Tracing (and the TorchScript ONNX exporter) must see an op, not an opaque ctypes call."""
    m = PReLU(3)
    x = torch.randn(2, 3, 4)
    traced = torch.jit.trace(m, x)
    assert "prelu" in str(traced.graph)
    torch.testing.assert_close(traced(x), m(x))


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("save_output", [False, True], ids=["keep_input", "keep_output"])
@pytest.mark.parametrize("holder", ["nobody", "retain_grad", "hook", "caller"])
def test_the_backward_overwrites_only_a_gradient_nobody_else_holds(dtype, save_output, holder) -> None:
    """∂E/∂x may be written over the incoming gradient where nothing else holds it (the next op's
    backward made it); a gradient kept by retain_grad, captured by a hook or passed by the caller
    stays as it was, and every gradient equals the reference's."""
    gen = torch.Generator().manual_seed(10)
    x = _input((4, 6, 5, 5), "channels_last", dtype, gen)
    w = torch.rand(6, generator=gen, dtype=dtype) * 0.5 + 0.05
    g = torch.randn(x.shape, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
    results = []
    for fn in (partial(prelu, save_output=save_output), prelu_reference):
        xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = fn(xl * 1.0, wl)
        held = []
        if holder == "retain_grad":
            y.retain_grad()
        elif holder == "hook":
            y.register_hook(held.append)
        if holder == "caller":
            given = (g * 3.0).contiguous(memory_format=torch.channels_last)
            gx, gw = torch.autograd.grad(y, (xl, wl), given)
            held.append(given)
        else:
            gx, gw = torch.autograd.grad(y * 3.0, (xl, wl), g)
        if holder == "retain_grad":
            held.append(y.grad)
        results.append((gx, gw, held))
    (gx, gw, held), (gx_ref, gw_ref, _) = results
    torch.testing.assert_close(gx, gx_ref, atol=0, rtol=0)
    torch.testing.assert_close(
        gw, gw_ref, **({"atol": 0.05, "rtol": 0.02} if dtype is torch.bfloat16 else {})
    )
    for kept in held:
        assert torch.equal(kept, g * 3.0), holder


@needs_kernel
def test_inference_mode_runs_the_kernel_below_autograd() -> None:
    """Inference mode skips the autograd layer, so the op needs a kernel of its own there."""
    gen = torch.Generator().manual_seed(9)
    x = _input((2, 5, 3, 3), "channels_last", torch.float32, gen)
    w = torch.rand(5, generator=gen, requires_grad=True)
    with torch.inference_mode():
        y = prelu(x, w)
    assert prelu_fast.can_fuse(x, w)
    assert torch.equal(y, prelu_reference(x, w).detach())


def test_fallback_gives_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(8)
    x = _input((4, 6, 5, 5), "channels_last", torch.bfloat16, gen)
    w = torch.rand(6, generator=gen)
    g = torch.randn(x.shape, generator=gen).bfloat16()
    fused = _grads(prelu, x, w, g)
    monkeypatch.setattr(activations, "can_fuse", lambda x, w: False)
    plain = _grads(prelu, x, w, g)
    torch.testing.assert_close(fused[0], plain[0], atol=0, rtol=0)
    torch.testing.assert_close(fused[1], plain[1], atol=0, rtol=0)
    torch.testing.assert_close(fused[2], plain[2], atol=0.05, rtol=0.02)


def _tiny_net(act: str = "prelu") -> nn.Module:
    torch.manual_seed(0)
    return create_model(
        "net14", stem="small", width=0.125, fc_width=32, num_classes=4, in_chans=1, act=act, dropout=0.0
    )


@needs_kernel
def test_training_step_under_autocast_matches_the_composite_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer's default step (bfloat16 autocast, channels_last): every conv and fc gradient is
    bit-identical to ATen's PReLU path (the input gradients are), slope gradients agree closely."""

    def grads(fused: bool) -> dict[str, torch.Tensor]:
        monkeypatch.setattr(activations, "can_fuse", prelu_fast.can_fuse if fused else lambda x, w: False)
        net = _tiny_net().to(memory_format=torch.channels_last)
        x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(9))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(
                net(x.contiguous(memory_format=torch.channels_last)).float(), torch.arange(8) % 4
            )
        loss.backward()
        return {n: p.grad for n, p in net.named_parameters()}

    fused, plain = grads(True), grads(False)
    for name, grad in fused.items():
        if name.endswith(".weight") and "act" in name:  # PReLU slopes
            torch.testing.assert_close(grad, plain[name], atol=1e-2, rtol=2e-2)
        else:
            assert torch.equal(grad, plain[name]), name


def test_torch_compile_of_a_model_matches_eager() -> None:
    """Dynamo sees the composite op (backend aot_eager: the traced forward and backward graphs as
    they are); channel-wise and shared PReLU after conv and fc layers."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), PReLU(4), nn.Conv2d(4, 4, 2), PReLU(), nn.Flatten(), nn.Linear(64, 8), PReLU(8)
    )
    x = torch.randn(2, 1, 7, 7)
    eager = net(x)
    eager.sum().backward()
    expected = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    out = torch.compile(net, backend="aot_eager", fullgraph=True)(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager)
    for p, e in zip(net.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e)


@pytest.mark.slow
def test_torch_compile_inductor_of_a_net_matches_eager() -> None:
    """The default backend (Inductor generates C++ for the pointwise ops and their reductions)."""
    net = _tiny_net()
    x = torch.randn(4, 1, 16, 16)
    eager = net(x)
    eager.sum().backward()
    expected = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    out = torch.compile(net)(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager, atol=1e-4, rtol=1e-4)
    for p, e in zip(net.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e, atol=1e-4, rtol=1e-3)
