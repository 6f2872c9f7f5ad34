"""Parametric rectified linear unit (PReLU), paper Sec. 2.1, Eq. 1-4.

    f(y_i) = y_i        if y_i > 0
           = a_i · y_i  if y_i <= 0          (Eq. 1; = max(0, y_i) + a_i · min(0, y_i))

`i` indexes the channel (channel-wise) or the whole layer (channel-shared). The channel axis is
explicit (`dim`: 1 for NCHW, -1 for NHWC) rather than guessed from sizes. `prelu_reference` writes
Eq. 1 as one pointwise broadcast, so autograd derives Eq. 2-3's gradients (the broadcast's backward
is Eq. 2's sum over positions) and double backward works.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rectifiers.prelu_fast import can_fuse, fused_prelu, slope_view

__all__ = ["PReLU", "activation_slope", "prelu", "prelu_reference"]


def _channel_dim(x: Tensor, weight: Tensor, dim: int) -> int | None:
    """Validate the arguments of `prelu` and return the channel axis (non-negative), or None when a
    single slope is shared by every element."""
    if not x.is_floating_point():
        raise ValueError(f"prelu: input must be a floating-point tensor, got dtype {x.dtype}")
    if not weight.is_floating_point():
        raise ValueError(f"prelu: weight must be a floating-point tensor, got dtype {weight.dtype}")
    if weight.dim() > 1:  # 0-D is one shared slope, as torch.nn.functional.prelu takes it
        raise ValueError(
            "prelu: weight must be 0-D (one shared slope) or 1-D of shape (num_parameters,), "
            f"got shape {tuple(weight.shape)}"
        )
    rank = x.dim()
    if rank == 0:
        if weight.numel() != 1:
            raise ValueError(f"prelu: a 0-dim input takes a single shared slope, got {weight.numel()} slopes")
        return None
    # A 1-D input is one unbatched vector of channels (torch would take it as one channel).
    if rank == 1 and dim == 1:
        dim = 0
    if not -rank <= dim < rank:
        raise ValueError(
            f"prelu: dim={dim} is out of range for a {rank}-D input (valid: {-rank} to {rank - 1})"
        )
    dim %= rank
    if weight.numel() == 1:
        return None
    if weight.numel() != x.shape[dim]:
        raise ValueError(
            f"prelu: got {weight.numel()} slopes but the input has {x.shape[dim]} channels on "
            f"dim {dim} (input shape {tuple(x.shape)}); pass num_parameters equal to the channel "
            "count, or 1 for a shared slope"
        )
    return dim


def prelu_reference(x: Tensor, weight: Tensor, dim: int = 1) -> Tensor:
    """PReLU written out as Eq. 1, the ground truth for every faster implementation.

    ``where(x > 0, x, a · x)``: y = 0 takes the ``a`` branch as in Eq. 1 and 3 (and torch's gradient
    at 0). The slope is cast to the input's dtype, so the output keeps the input's dtype and memory
    format; the slope's gradient flows back in its own dtype.
    """
    slope = slope_view(x, weight, _channel_dim(x, weight, dim))
    return torch.where(x > 0, x, slope * x)


def prelu(x: Tensor, weight: Tensor, dim: int = 1, *, save_output: bool = False) -> Tensor:
    """Functional PReLU, Eq. 1: ``f(y) = max(0, y) + a · min(0, y)`` per channel.

    Args:
        x: input of any rank (1 to 5 in practice), any memory format, floating dtype.
        weight: slopes of shape ``(num_parameters,)``; ``num_parameters`` is 1 (channel-shared) or
            ``x.shape[dim]`` (channel-wise). A 0-D weight is one shared slope.
        dim: the channel axis; negative values count from the end. A 1-D input is taken as one
            vector of channels, so ``dim=1`` (the default) means its dim 0 there.
        save_output: let the fused backward keep the output instead of the input (see below).

    Returns a tensor of ``x``'s shape, dtype and memory format, equal to `prelu_reference`.

    Dense CPU float32, float64 and bfloat16 tensors run the fused kernel (`rectifiers.prelu_fast`),
    everything else ATen's PReLU; both give `prelu_reference`'s outputs and input gradients exactly
    (the slope gradient up to summation order) and support double backward.

    By default the backward keeps the input, as ``torch.nn.PReLU`` does, so the output may be
    modified in place. With ``save_output=True`` and every slope positive it keeps only the output,
    as ReLU does, which saves memory where the next layer keeps it anyway; the slope gradient is then
    one rounding of a·y per term away from Eq. 2, and the output must not be modified in place.

    >>> import torch
    >>> prelu(torch.tensor([[-2.0, 3.0]]), torch.tensor([0.25]))
    tensor([[-0.5000,  3.0000]])
    """
    channel = _channel_dim(x, weight, dim)
    if can_fuse(x, weight):
        return fused_prelu(x, weight, channel, save_output)
    return torch.ops.aten._prelu_kernel(x, slope_view(x, weight, channel))


class PReLU(nn.Module):
    """Parametric ReLU module (paper Eq. 1), channel-wise or channel-shared along any axis.

    Args:
        num_parameters: 1 for the channel-shared variant (one slope per layer), or the number of
            channels for the channel-wise variant.
        init: initial slope; the paper uses 0.25 throughout (Sec. 2.1).
        device, dtype: of the slopes, in ``torch.nn.PReLU``'s positions.
        dim: (keyword) the channel axis of the input (1 for NCHW / (N, C), -1 for NHWC / (N, L, C)).
        save_output: (keyword) see `prelu`; no in-place op may then follow this module.

    ``weight`` has shape ``(num_parameters,)``, so ``state_dict`` loads into ``torch.nn.PReLU`` and
    back. No weight decay on it (Sec. 2.1: decay biases PReLU toward ReLU); see `param_groups`.

    >>> m = PReLU(64)
    >>> m(torch.randn(2, 64, 8, 8)).shape
    torch.Size([2, 64, 8, 8])
    """

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        dim: int = 1,
        save_output: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, int) or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be a positive int, got {num_parameters!r}")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise ValueError(f"PReLU: dim must be an int, got {dim!r}")
        self.num_parameters = num_parameters
        self.init = float(init)
        self.dim = dim
        self.save_output = bool(save_output)
        self.weight = nn.Parameter(torch.empty(num_parameters, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(self.init)

    def forward(self, x: Tensor) -> Tensor:
        return prelu(x, self.weight, self.dim, save_output=self.save_output)

    def extra_repr(self) -> str:
        saved = ", save_output=True" if self.save_output else ""
        return f"num_parameters={self.num_parameters}, init={self.init}, dim={self.dim}{saved}"


def activation_slope(module: nn.Module) -> float | None:
    """The negative-side slope ``a`` of a rectifier module, for Eq. 15; None for anything else.

    PReLU gives the mean of its slopes (its ``init`` on the meta device), RReLU its eval-mode slope.
    """
    if isinstance(module, nn.ReLU):
        return 0.0
    if isinstance(module, nn.LeakyReLU):
        return float(module.negative_slope)
    if isinstance(module, (PReLU, nn.PReLU)):
        if module.weight.is_meta:
            return float(module.init)
        return float(module.weight.detach().float().mean())
    if isinstance(module, nn.RReLU):
        return (module.lower + module.upper) / 2.0
    return None
