"""Plain deep rectifier nets (no normalization, no shortcuts) for the signal-variance demos.

These are the nets of the paper's Sec. 2.2 analysis: a stack of weight layers, each followed by a
rectifier, nothing else. Layers are named ``fc1``/``conv1``, ``act1``, ... in forward order. Nothing
modifies an activation in place, so their PReLUs keep their outputs for the backward (``save_output``).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from rectifiers.layers import make_activation

__all__ = ["plain_convnet", "plain_mlp"]


def _check_size(depth: int, width: int) -> None:
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be positive, got depth={depth}, width={width}")


def plain_mlp(
    depth: int = 30,
    width: int = 1024,
    in_features: int | None = None,
    act: str = "relu",
    final_activation: bool = True,
    bias: bool = True,
) -> nn.Sequential:
    """``depth`` Linear layers of ``width`` units, a rectifier ``act`` (see
    `rectifiers.layers.make_activation`) after each (after the last too,
    unless ``final_activation=False``). ``in_features`` defaults to ``width``, so every layer has
    n = n̂ = width and the forward and backward conditions (Eq. 10, 14) coincide."""
    _check_size(depth, width)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    fan_in = width if in_features is None else in_features
    for i in range(1, depth + 1):
        layers[f"fc{i}"] = nn.Linear(fan_in, width, bias=bias)
        if i < depth or final_activation:
            layers[f"act{i}"] = make_activation(act, width, save_output=True)
        fan_in = width
    return nn.Sequential(layers)


def plain_convnet(
    depth: int = 30,
    width: int = 64,
    in_channels: int = 3,
    kernel_size: int = 3,
    act: str = "relu",
    padding_mode: str = "circular",
    final_activation: bool = True,
    bias: bool = True,
) -> nn.Sequential:
    """``depth`` stride-1 ``kernel_size`` convs of ``width`` filters at constant map size, a
    rectifier after each. Circular padding (the default) gives every response the full n = k²c
    connections; zero padding shortens the border responses' sums and biases the variance down."""
    _check_size(depth, width)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd to keep the map size, got {kernel_size}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels = in_channels
    for i in range(1, depth + 1):
        layers[f"conv{i}"] = nn.Conv2d(
            channels, width, kernel_size, padding=kernel_size // 2, padding_mode=padding_mode, bias=bias
        )
        if i < depth or final_activation:
            layers[f"act{i}"] = make_activation(act, width, save_output=True)
        channels = width
    return nn.Sequential(layers)
