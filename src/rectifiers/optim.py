"""Optimizer parameter groups that keep weight decay off the PReLU slopes (paper Sec. 2.1).

"We do not use weight decay (l2 regularization) when updating a_i. A weight decay tends to push a_i
to zero, and thus biases PReLU toward ReLU." The slopes still get momentum and the same learning rate
(Eq. 4). Whether biases are decayed is left open by the paper; it is an option here.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from rectifiers.activations import PReLU

__all__ = ["param_groups"]


def param_groups(
    model: nn.Module, weight_decay: float, *, no_decay_bias: bool = False
) -> list[dict[str, Any]]:
    """Split ``model``'s parameters into optimizer groups, each with a ``"name"`` key:

    - ``"decay"``: every other parameter, with ``weight_decay``;
    - ``"prelu"``: the slopes of every PReLU (ours and ``torch.nn.PReLU``), weight decay 0;
    - ``"bias"``: parameters named ``bias``, weight decay 0, only when ``no_decay_bias=True``
      (otherwise biases are decayed with the weights, as in the paper's Caffe setup).

    Every parameter (trainable or not, shared ones once) lands in exactly one group; empty groups
    are left out. Pass the result straight to an optimizer:

    >>> import torch
    >>> net = nn.Sequential(nn.Linear(4, 4), PReLU(4))
    >>> opt = torch.optim.SGD(param_groups(net, 5e-4), lr=0.01, momentum=0.9)
    """
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
    decay = {"decay": weight_decay, "prelu": 0.0, "bias": 0.0}
    groups: dict[str, list[nn.Parameter]] = {name: [] for name in decay}
    for qualified, param in model.named_parameters():  # a shared parameter once
        owner, _, pname = qualified.rpartition(".")
        if pname == "weight" and isinstance(model.get_submodule(owner), (PReLU, nn.PReLU)):
            groups["prelu"].append(param)
        elif no_decay_bias and pname == "bias":
            groups["bias"].append(param)
        else:
            groups["decay"].append(param)
    return [
        {"name": name, "params": params, "weight_decay": decay[name]}
        for name, params in groups.items()
        if params
    ]
