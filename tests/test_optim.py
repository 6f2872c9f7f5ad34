"""param_groups: no weight decay on PReLU slopes (paper Sec. 2.1), biases optional."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rectifiers.activations import PReLU
from rectifiers.optim import param_groups


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        PReLU(4),
        nn.Flatten(),
        nn.Linear(4, 5),
        nn.PReLU(),  # torch's own PReLU counts too
        nn.Linear(5, 2, bias=False),
    )


def _ids(group: dict) -> set[int]:
    return {id(p) for p in group["params"]}


@pytest.mark.parametrize("no_decay_bias", [False, True])
def test_every_parameter_in_exactly_one_group(no_decay_bias: bool) -> None:
    net = _net()
    groups = param_groups(net, 5e-4, no_decay_bias=no_decay_bias)
    all_ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(all_ids) == sorted(id(p) for p in net.parameters())
    assert len(all_ids) == len(set(all_ids))
    by_name = {g["name"]: g for g in groups}
    assert _ids(by_name["prelu"]) == {id(net[1].weight), id(net[4].weight)}
    assert by_name["prelu"]["weight_decay"] == 0.0
    assert by_name["decay"]["weight_decay"] == 5e-4
    biases = {id(net[0].bias), id(net[3].bias)}
    if no_decay_bias:
        assert _ids(by_name["bias"]) == biases and by_name["bias"]["weight_decay"] == 0.0
    else:
        assert "bias" not in by_name and biases <= _ids(by_name["decay"])


def test_shared_parameter_listed_once() -> None:
    lin = nn.Linear(3, 3)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    groups = param_groups(net, 1e-4)
    assert [len(g["params"]) for g in groups] == [2]


def test_sgd_decays_weights_but_not_slopes() -> None:
    """With zero gradients, SGD's only update is the decay: -lr·wd·w on weights, nothing on slopes."""
    net = _net()
    lr, wd = 0.1, 0.5
    opt = torch.optim.SGD(param_groups(net, wd), lr=lr)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in net.named_parameters():
        if name in ("1.weight", "4.weight"):  # the PReLU slopes
            torch.testing.assert_close(p, before[name], atol=0, rtol=0)
        else:
            torch.testing.assert_close(p, before[name] * (1 - lr * wd))


def test_sgd_momentum_still_updates_slopes_from_their_gradient() -> None:
    net = _net()
    opt = torch.optim.SGD(param_groups(net, 0.5), lr=0.1, momentum=0.9)
    x = torch.randn(8, 3, 3, 3)
    net(x).sum().backward()
    slope_before = net[1].weight.detach().clone()
    expected = slope_before - 0.1 * net[1].weight.grad  # Eq. 4, first step: no decay term
    opt.step()
    torch.testing.assert_close(net[1].weight, expected)


def test_rejects_negative_weight_decay() -> None:
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(_net(), -1.0)
