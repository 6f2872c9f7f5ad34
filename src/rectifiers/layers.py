"""Building blocks of the paper's networks: spatial pyramid pooling, activations, conv + activation.

`SpatialPyramidPool2d` is the SPP layer of [10] before fc1 (Table 1: levels {6, 3, 2, 1}; Table 3:
{7, 3, 2, 1}): a fixed-length vector from a map of any size, so the same fc layers score a crop and
the larger maps of dense testing. The paper's levels are not powers of 2, so each level is an
adaptive max pooling with exactly n×n bins. `make_activation` resolves names once, at build time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rectifiers.activations import PReLU

# name -> factory(channels, save_output); "prelu" is the channel-wise PReLU of Eq. 1, "prelu_shared"
# the variant with one slope per layer, "leaky_relu" the LReLU the paper compares with (a = 0.01,
# from [20]).
_ACTIVATIONS: dict[str, Callable[[int, bool], nn.Module]] = {
    "relu": lambda channels, save_output: nn.ReLU(),
    "prelu": lambda channels, save_output: PReLU(channels, 0.25, save_output=save_output),
    "prelu_shared": lambda channels, save_output: PReLU(1, 0.25, save_output=save_output),
    "leaky_relu": lambda channels, save_output: nn.LeakyReLU(negative_slope=0.01),
}
ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATIONS)

# An activation given as a name, or as a class or factory that builds the module.
ActLayer = str | type[nn.Module] | Callable[[], nn.Module]


def make_activation(act: ActLayer, channels: int, *, save_output: bool = False) -> nn.Module:
    """The activation module `act` for a layer with `channels` output channels (or features).

    `act` is one of `ACTIVATIONS`: "relu", "prelu" (channel-wise, `channels` slopes initialised to
    0.25 as in the paper), "prelu_shared" (one slope), "leaky_relu" (fixed slope 0.01); or, as
    timm's ``create_act_layer`` takes it, a class or factory called with no argument for each layer
    (``nn.SiLU``, ``partial(nn.LeakyReLU, 0.2)``), except that a PReLU class (ours or
    ``torch.nn.PReLU``) gets ``channels`` slopes. ReLU is not in-place so that forward and backward
    hooks (signal-variance diagnostics) see the conv's output. ``save_output`` is our PReLU's (see
    `rectifiers.prelu`): a net turns it on only when no in-place op follows its activations.

    >>> make_activation("prelu", 64).weight.shape
    torch.Size([64])
    """
    if channels < 1:
        raise ValueError(f"an activation needs at least 1 channel, got {channels}")
    if isinstance(act, str):
        factory = _ACTIVATIONS.get(act)
        if factory is None:
            raise ValueError(f"unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")
        return factory(channels, save_output)
    if isinstance(act, type) and issubclass(act, PReLU | nn.PReLU):
        return act(channels, save_output=save_output) if issubclass(act, PReLU) else act(channels)
    if not callable(act):
        raise ValueError(f"an activation is a name ({', '.join(ACTIVATIONS)}) or a class, got {act!r}")
    module = act()
    if not isinstance(module, nn.Module):
        raise TypeError(f"activation factory {act!r} built a {type(module).__name__}, not an nn.Module")
    return module


def conv_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int = 0,
    act: ActLayer = "relu",
    save_output: bool = False,
) -> tuple[nn.Conv2d, nn.Module]:
    """A convolution (with bias, as in Caffe) and the activation after it, as a pair so a model can
    register both in forward order, where `initialize(a="auto")` reads each layer's slope."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
    return conv, make_activation(act, out_channels, save_output=save_output)


class SpatialPyramidPool2d(nn.Module):
    """Spatial pyramid max pooling [10] with arbitrary bin counts per level.

    Level n max-pools the map into n×n bins, bin i covering rows floor(i·H/n) to ceil((i+1)·H/n)
    (`adaptive_max_pool2d`'s rule), so any map of at least 1×1 works. Under `torch.onnx.export`
    (no adaptive pooling in ONNX) integer comparisons compute the same bins, keeping dynamic sizes.

    Output: (N, C · Σ n²), each level flattened as (C, n, n), levels in the order given.

    >>> SpatialPyramidPool2d((7, 3, 2, 1))(torch.randn(2, 512, 14, 14)).shape
    torch.Size([2, 32256])
    """

    def __init__(self, levels: Sequence[int] = (7, 3, 2, 1)) -> None:
        super().__init__()
        levels = tuple(levels)
        if not levels:
            raise ValueError("SpatialPyramidPool2d needs at least one level")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in levels):
            raise ValueError(f"SPP levels must be positive integers, got {levels}")
        self.levels: tuple[int, ...] = levels

    @property
    def num_bins(self) -> int:
        """Σ n² over the levels: the number of pooled values per channel."""
        return sum(n * n for n in self.levels)

    def output_features(self, channels: int) -> int:
        """Length of the output vector for a map with `channels` channels: C · Σ n²."""
        return channels * self.num_bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"SpatialPyramidPool2d expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}"
            )
        # ONNX has no adaptive max pooling: while exporting, compute the same bins with masks
        pool = _bin_max_2d if torch.onnx.is_in_onnx_export() else F.adaptive_max_pool2d
        return torch.cat([pool(x, n).flatten(1) for n in self.levels], dim=1)  # levels of (N, C·n²)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


def _bin_max(x: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """Max over n bins along `dim`: p is in bin i when i·L < (p+1)·n and p·n < (i+1)·L, tensor
    comparisons with no shape-dependent branch, so an exported graph is exact for every size L."""
    length = x.shape[dim]
    pos = torch.arange(length, device=x.device).view(
        [-1 if d == dim % x.dim() else 1 for d in range(x.dim())]
    )
    bins = []
    for i in range(n):
        inside = (i * length < (pos + 1) * n) & (pos * n < (i + 1) * length)
        bins.append(x.masked_fill(~inside, float("-inf")).amax(dim=dim, keepdim=True))
    return torch.cat(bins, dim=dim)


def _bin_max_2d(x: torch.Tensor, n: int) -> torch.Tensor:
    """`adaptive_max_pool2d(x, n)` from comparisons, rows then columns; slower, so export only."""
    return _bin_max(_bin_max(x, n, 2), n, 3)
