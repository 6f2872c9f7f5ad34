"""The drop-in claims: `rectifiers.prelu`, `rectifiers.PReLU` and the init functions pass the same checks
as `torch.nn.functional.prelu`, `torch.nn.PReLU` and `torch.nn.init`. Every test runs torch's own
implementation through the same check as a control, so a failure here is a difference from torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rectifiers
from rectifiers import init as rinit
from rectifiers.activations import PReLU, prelu

FUNCTIONAL = {"rectifiers": prelu, "torch": F.prelu}
MODULE = {"rectifiers": PReLU, "torch": nn.PReLU}
KAIMING_NORMAL = {"rectifiers": rinit.he_normal_, "torch": nn.init.kaiming_normal_}
KAIMING_UNIFORM = {"rectifiers": rinit.he_uniform_, "torch": nn.init.kaiming_uniform_}
KAIMING = {**{f"{k}-normal": v for k, v in KAIMING_NORMAL.items()}}
KAIMING |= {f"{k}-uniform": v for k, v in KAIMING_UNIFORM.items()}
XAVIER = {
    "rectifiers-normal": rinit.xavier_normal_,
    "torch-normal": nn.init.xavier_normal_,
    "rectifiers-uniform": rinit.xavier_uniform_,
    "torch-uniform": nn.init.xavier_uniform_,
}
GAIN = {"rectifiers": rinit.calculate_gain, "torch": nn.init.calculate_gain}


def _pick(table: dict) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("impl", list(table.values()), ids=list(table))


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------- prelu and PReLU


@_pick(FUNCTIONAL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_gradients_equal_one_at_a_time(impl, dtype) -> None:
    x = torch.randn(4, 3, dtype=dtype, requires_grad=True)
    w = torch.full((3,), 0.25, dtype=dtype, requires_grad=True)
    g = torch.randn(2, 4, 3, dtype=dtype)
    y = impl(x, w)
    gx, gw = torch.autograd.grad(y, (x, w), g, is_grads_batched=True, retain_graph=True)
    for i in range(2):
        ex, ew = torch.autograd.grad(y, (x, w), g[i], retain_graph=True)
        torch.testing.assert_close(gx[i], ex)
        torch.testing.assert_close(gw[i], ew)


@_pick(FUNCTIONAL)
def test_vectorized_jacobian_and_hessian(impl) -> None:
    x = torch.randn(4, 3, dtype=torch.float64)
    w = torch.full((3,), 0.25, dtype=torch.float64)

    def f(x, w):
        return impl(x, w)

    def energy(x, w):
        return (impl(x, w) ** 2).sum()

    for vectorize in (True, False):
        jac = torch.autograd.functional.jacobian(f, (x, w), vectorize=vectorize)
        hes = torch.autograd.functional.hessian(energy, (x, w), vectorize=vectorize)
        if vectorize:
            vectorized = (jac, hes)
    torch.testing.assert_close(vectorized, (jac, hes))  # nested tuples, compared leaf by leaf


def _net_with_inplace_after(act: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3), act, nn.Dropout(0.5, inplace=True), nn.Conv2d(8, 4, 3))


@_pick(MODULE)
def test_inplace_op_after_prelu_backward_works(impl) -> None:
    torch.manual_seed(0)
    net = _net_with_inplace_after(impl(8))
    net(torch.randn(2, 3, 9, 9)).sum().backward()
    assert net[1].weight.grad is not None and torch.isfinite(net[1].weight.grad).all()


def test_output_saving_is_an_opt_in_that_autograd_guards() -> None:
    # What the paper's nets turn on: the output is kept, so an in-place op on it is an error, never a
    # silently wrong gradient.
    net = _net_with_inplace_after(PReLU(8, save_output=True))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        net(torch.randn(2, 3, 9, 9)).sum().backward()


@_pick(FUNCTIONAL)
@pytest.mark.parametrize("shape", [(), (5,), (4, 3), (2, 3, 4, 4)])
def test_zero_dim_weight_is_a_shared_slope(impl, shape) -> None:
    x = torch.randn(shape, requires_grad=True)
    w = torch.tensor(0.8, requires_grad=True)
    y = impl(x, w)
    torch.testing.assert_close(y, torch.where(x > 0, x, 0.8 * x))
    y.sum().backward()
    assert w.grad.shape == w.shape
    torch.testing.assert_close(w.grad, torch.where(x > 0, 0, x).sum().detach())


@_pick(FUNCTIONAL)
def test_weight_of_two_dims_is_refused(impl) -> None:
    with pytest.raises((ValueError, RuntimeError), match="1-?D|1D"):
        impl(torch.randn(2, 3), torch.full((3, 1), 0.25))


@_pick(MODULE)
def test_module_takes_device_and_dtype_positionally(impl) -> None:
    m = impl(4, 0.1, "meta", torch.float64)
    assert m.weight.is_meta and m.weight.dtype is torch.float64
    m = impl(4, 0.1, "cpu", torch.float64)
    assert m.weight.dtype is torch.float64 and torch.equal(
        m.weight, torch.full((4,), 0.1, dtype=torch.float64)
    )


def test_module_dim_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        PReLU(4, 0.25, -1, None, None)  # the old order, dim third
    assert PReLU(4, dim=-1).dim == -1


# -------------------------------------------------------------------------------------- the init


@_pick(XAVIER)
def test_xavier_gain_by_position_and_by_name(impl) -> None:
    base = impl(torch.empty(64, 32), generator=_seeded())
    by_name = impl(torch.empty(64, 32), gain=1.5, generator=_seeded())
    by_position = impl(torch.empty(64, 32), 1.5, _seeded())
    torch.testing.assert_close(by_name, 1.5 * base)
    torch.testing.assert_close(by_position, 1.5 * base)


@_pick(XAVIER)
def test_xavier_std(impl) -> None:
    w = impl(torch.empty(400, 200), gain=2.0, generator=_seeded())
    assert float(w.std()) == pytest.approx(2.0 * math.sqrt(2 / 600), rel=0.02)


@_pick(KAIMING)
@pytest.mark.parametrize(("a", "mode", "nonlinearity", "gain"), [
    (0, "fan_out", "relu", math.sqrt(2)),
    (0.5, "fan_out", "relu", math.sqrt(2)),  # "relu" ignores a, as torch does
    (0.25, "fan_in", "leaky_relu", math.sqrt(2 / (1 + 0.25**2))),
])  # fmt: skip
def test_kaiming_in_torchs_argument_order(impl, a, mode, nonlinearity, gain) -> None:
    shape = (256, 128, 3, 3)
    n = 128 * 9 if mode == "fan_in" else 256 * 9
    w = impl(torch.empty(shape), a, mode, nonlinearity, _seeded())
    again = impl(torch.empty(shape), a, mode, nonlinearity, _seeded())
    assert torch.equal(w, again)  # the 5th positional argument is the generator
    assert float(w.std()) == pytest.approx(gain / math.sqrt(n), rel=0.02)


@_pick(KAIMING)
def test_kaiming_default_nonlinearity_uses_a(impl) -> None:
    w = impl(torch.empty(512, 512), a=1.0, generator=_seeded())
    assert float(w.std()) == pytest.approx(1 / math.sqrt(512), rel=0.02)


@_pick(KAIMING)
def test_kaiming_rejects_an_unknown_nonlinearity(impl) -> None:
    with pytest.raises(ValueError, match="bogus"):
        impl(torch.empty(4, 4), 0, "fan_in", "bogus")


@_pick(KAIMING)
def test_kaiming_rejects_a_bool_slope(impl) -> None:
    with pytest.raises(ValueError, match="True"):
        impl(torch.empty(4, 4), a=True)


@_pick(GAIN)
def test_gain_rejects_a_bool_slope(impl) -> None:
    with pytest.raises(ValueError, match="True"):
        impl("leaky_relu", True)


def test_rectifier_gain_rejects_a_bool_slope() -> None:
    with pytest.raises(ValueError, match="True"):
        rinit.rectifier_gain(True)


@_pick(KAIMING)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_on_a_zero_element_tensor_warns_and_returns_it(impl, mode) -> None:
    t = torch.empty(0, 1)
    with pytest.warns(UserWarning, match="zero-element"):
        assert impl(t, mode=mode) is t


@_pick(GAIN)
@pytest.mark.parametrize(
    ("nonlinearity", "param"),
    [
        ("linear", None),
        ("conv1d", None),
        ("conv2d", None),
        ("conv3d", None),
        ("conv_transpose1d", None),
        ("conv_transpose2d", None),
        ("conv_transpose3d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.25),
        ("leaky_relu", 1),
        ("selu", None),
    ],
)
def test_calculate_gain_values(impl, nonlinearity, param) -> None:
    expected = {
        "sigmoid": 1.0,
        "tanh": 5 / 3,
        "relu": math.sqrt(2),
        "leaky_relu": math.sqrt(2 / (1 + (0.01 if param is None else param) ** 2)),
        "selu": 3 / 4,
    }.get(nonlinearity, 1.0)
    assert impl(nonlinearity, param) == pytest.approx(expected, rel=1e-12)


@_pick(GAIN)
def test_calculate_gain_rejects_an_unknown_name(impl) -> None:
    with pytest.raises(ValueError, match="gelu"):
        impl("gelu")


def test_calculate_gain_has_the_prelu_gain_of_eq_15() -> None:
    assert rectifiers.calculate_gain("prelu") == pytest.approx(math.sqrt(2 / (1 + 0.25**2)))
    assert rectifiers.calculate_gain("prelu", 0.5) == rinit.rectifier_gain(0.5)
