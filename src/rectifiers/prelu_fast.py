"""PReLU on the fused CPU kernel (`rectifiers.prelu_kernel`), wrapped for autograd.

`rectifiers.prelu` calls `fused_prelu` where `can_fuse` holds (a plain dense CPU tensor of a kernel
dtype, outside compile, tracing and torch.func) and ATen's PReLU elsewhere, with the same results:
torch.compile then sees a pointwise op Inductor can fuse, and ONNX export a PRelu node.

A plain backward runs the fused kernel (Eq. 2-3 in one pass). A backward that builds a graph
(double backward) or a vmap-batched gradient takes the same formulas in differentiable torch ops;
forward-mode AD takes ATen's path, which has the jvp formula.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd import forward_ad

from rectifiers import prelu_kernel

__all__ = ["CHANNELS_LAST_BY_RANK", "can_fuse", "fused_prelu", "slope_view"]

CHANNELS_LAST_BY_RANK = {4: torch.channels_last, 5: torch.channels_last_3d}


def _layout(x: Tensor) -> torch.memory_format | None:
    """The dense memory format of ``x`` the kernel can walk, or None."""
    if x.is_contiguous():
        return torch.contiguous_format
    fmt = CHANNELS_LAST_BY_RANK.get(x.dim())
    if fmt is not None and x.is_contiguous(memory_format=fmt):
        return fmt
    return None


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
    if not weight.is_contiguous() or _layout(x) is None:
        return False
    return prelu_kernel.load() is not None


def _blocks(x: Tensor, channel: int | None, slopes: int) -> tuple[int, int, int]:
    """(outer, C, inner): ``x``'s memory as ``outer`` blocks of C channel runs of ``inner`` elements.

    For a dense tensor the stride of a dim of size > 1 is the count of elements inside it, so the
    channel axis' stride is ``inner`` whatever the layout: NCHW (N, C, H·W), NHWC (N·H·W, C, 1).
    """
    if channel is None or slopes == 1:
        return 1, 1, x.numel()
    c = x.shape[channel]
    inner = x.stride(channel)
    return x.numel() // (c * inner), c, inner


def slope_view(x: Tensor, weight: Tensor, channel: int | None) -> Tensor:
    """The slopes in ``x``'s dtype, viewed to broadcast against ``x`` along ``channel`` (None: one
    slope shared by every element, as `activations._channel_dim` returns for a single slope)."""
    shape = [1] * x.dim()
    if channel is not None:
        shape[channel] = weight.numel()
    return weight.to(x.dtype).view(shape)


def _kernel_forward(x: Tensor, weight: Tensor, channel: int | None) -> tuple[Tensor, bool]:
    """PReLU(x) and whether x can be told from it (every slope positive, `PReLUKernel.forward`)."""
    y = torch.empty_like(x)  # a dense x: the same strides
    if not x.numel():
        return y, False
    return y, prelu_kernel.load().forward(x, weight, y, _blocks(x, channel, weight.numel()))


class _FusedPReLU(torch.autograd.Function):
    """y = PReLU(x) with the fused kernel forward and backward; differentiable backward on demand.

    Keeps x for the backward, or with ``save_output`` and every slope positive y, which the next
    layer keeps anyway (Eq. 2's Σ g·x is then Σ g·y / a). A functorch-batched gradient has no
    storage for the kernel, so it takes the differentiable torch ops.
    """

    # The forward takes ctx itself (no separate setup_context): Function.apply then skips binding
    # the arguments through inspect.signature, a third of the call's Python overhead.
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, channel: int | None, save_output: bool) -> Tensor:
        y, invertible = _kernel_forward(x, weight, channel)
        from_output = save_output and invertible
        ctx.channel = channel
        ctx.layout = _layout(x)
        ctx.from_output = from_output
        ctx.save_for_backward(y if from_output else x, weight)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        src, weight = ctx.saved_tensors  # x, or y when ctx.from_output
        need_x, need_w = ctx.needs_input_grad[:2]
        # create_graph=True (a backward that is itself differentiable), or a batched gradient:
        # is_grads_batched wraps it in the legacy vmap's BatchedTensor, torch.func in its own.
        functorch = torch._C._functorch
        if (
            torch.is_grad_enabled()
            or functorch.is_legacy_batchedtensor(grad)
            or functorch.is_functorch_wrapped_tensor(grad)
        ):
            gx, gw = _composite_backward(src, weight, grad, ctx.channel, ctx.from_output)
            return (gx if need_x else None), (gw if need_w else None), None, None
        grad = grad.contiguous(memory_format=ctx.layout)  # a no-op when it already matches x
        gx = torch.empty_like(src) if need_x else None
        gw = torch.empty_like(weight) if need_w else None
        if src.numel():
            blocks = _blocks(src, ctx.channel, weight.numel())
            prelu_kernel.load().backward(src, weight, grad, gx, gw, blocks, from_output=ctx.from_output)
        elif gw is not None:
            gw.zero_()
        return gx, gw, None, None


def _composite_backward(
    src: Tensor, weight: Tensor, grad: Tensor, channel: int | None, from_output: bool
) -> tuple[Tensor, Tensor]:
    """Eq. 2-3 in differentiable torch ops: ∂E/∂x = g·(1 or a), ∂E/∂a = Σ g·min(x, 0) per channel
    (from y: Σ g·min(y, 0) / a, whose two graph paths to ``a`` cancel, keeping double backward exact).
    """
    positive = src > 0
    slope = slope_view(src, weight, channel)
    gx = torch.where(positive, grad, slope * grad)
    summand = torch.where(positive, 0, grad * src)
    if channel is None or weight.numel() == 1:
        gw = summand.sum().reshape(weight.shape)
    elif src.dim() == 1:
        gw = summand  # one position per channel: nothing to sum (sum(dim=[]) would sum everything)
    else:
        gw = summand.sum([d for d in range(src.dim()) if d != channel])
    if from_output:
        gw = gw / slope.reshape(-1)
    return gx, gw.to(weight.dtype)


def fused_prelu(x: Tensor, weight: Tensor, channel: int | None, save_output: bool = False) -> Tensor:
    """PReLU through the fused kernel; ``channel`` is the (non-negative) channel axis or None for a
    single shared slope; ``save_output`` as in `rectifiers.prelu`. Call only where
    `can_fuse(x, weight)` holds."""
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _FusedPReLU.apply(x, weight, channel, save_output)
    return _kernel_forward(x, weight, channel)[0]
