"""PReLU on the fused CPU kernel (`rectifiers.prelu_kernel`) and its C++ autograd op.

`rectifiers.prelu` calls `fused_prelu` where `can_fuse` holds (a plain dense CPU tensor of a kernel
dtype, outside compile, tracing and torch.func) and ATen's PReLU elsewhere, with the same results:
torch.compile then sees a pointwise op Inductor can fuse, and ONNX export a PRelu node.

A plain backward runs the fused kernel (Eq. 2-3 in one pass). A backward that builds a graph
(double backward) or a vmap-batched gradient takes the same formulas in differentiable torch ops
(``prelu_autograd.cpp``); forward-mode AD takes ATen's path, which has the jvp formula.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import forward_ad

from rectifiers import prelu_kernel

__all__ = ["CHANNELS_LAST_BY_RANK", "can_fuse", "fused_prelu", "slope_view"]

CHANNELS_LAST_BY_RANK = {4: torch.channels_last, 5: torch.channels_last_3d}


def _walkable(x: Tensor) -> bool:
    """Whether the kernel can walk ``x``'s memory: dense, contiguous or channels_last."""
    fmt = CHANNELS_LAST_BY_RANK.get(x.dim())
    return x.is_contiguous() or (fmt is not None and x.is_contiguous(memory_format=fmt))


def can_fuse(x: Tensor, weight: Tensor) -> bool:
    """Whether `fused_prelu` applies to these arguments (validated by `rectifiers.prelu` already)."""
    # Cheapest tests first: this runs on every call, and a network calls it once per layer.
    if type(x) is not Tensor or type(weight) not in (Tensor, torch.nn.Parameter):
        return False  # tensor subclasses (FakeTensor, DTensor, ...) keep their own dispatch
    if not (x.is_cpu and weight.is_cpu) or x.dim() == 0:
        return False
    if x.dtype not in prelu_kernel.DTYPES or weight.dtype not in prelu_kernel.DTYPES:
        return False
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if torch._C._are_functorch_transforms_active():
        return False  # vmap / grad / jvp of torch.func need ops with batching rules
    # forward_ad keeps the innermost open dual level here (-1: none); should the attribute go away,
    # assume a level is open and look at the tensors.
    if getattr(forward_ad, "_current_level", 0) >= 0 and any(
        forward_ad.unpack_dual(t).tangent is not None for t in (x, weight)
    ):
        return False  # forward-mode AD: ATen's PReLU has the jvp formula
    if not (weight.is_contiguous() and _walkable(x)):
        return False
    return prelu_kernel.load() is not None


def slope_view(x: Tensor, weight: Tensor, channel: int | None) -> Tensor:
    """The slopes in ``x``'s dtype, viewed to broadcast against ``x`` along ``channel`` (None: one
    slope shared by every element, as `activations._channel_dim` returns for a single slope)."""
    shape = [1] * x.dim()
    if channel is not None:
        shape[channel] = weight.numel()
    return weight.to(x.dtype).view(shape)


def fused_prelu(x: Tensor, weight: Tensor, channel: int | None, save_output: bool = False) -> Tensor:
    """PReLU through the fused kernel; ``channel`` is the (non-negative) channel axis or None for a
    single shared slope; ``save_output`` as in `rectifiers.prelu` (the backward keeps y instead of x
    where every slope is positive). Call only where `can_fuse(x, weight)` holds."""
    return prelu_kernel.load().prelu(x, weight, channel, save_output)
