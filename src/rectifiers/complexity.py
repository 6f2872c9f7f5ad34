"""Multiply-adds and parameters per layer: the "complexity" and "depth" columns of the paper's Table 3.

The paper's "complexity (ops, ×10¹⁰)" counts multiply-adds of the conv and fc layers for one
224×224 image (VGG-19 1.96, model A 1.90, B 2.32, C 5.30); "depth" counts the conv and fc layers.
The same convention here: a convolution costs one multiply-add per weight per output position,

    MACs(conv) = H_out · W_out · C_out · (C_in / groups) · k_h · k_w,
    MACs(fc)   = in_features · out_features,

and biases, activations, pooling and PReLU (one multiply per negative value) count 0.

The count runs the model once on the meta device (forward hooks read each layer's output shape), so
model C at 224 px costs no real memory or compute.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.modules.conv import _ConvNd

from rectifiers.text_table import aligned_lines, markdown_table

_HEADER = ("layer", "kind", "output", "multiply-adds", "params")


@dataclass
class LayerCost:
    name: str  # the module's qualified name, e.g. "features.conv2_1"
    kind: str  # "conv" or "fc"
    output_shape: tuple[int, ...]  # without the batch dimension
    macs: int  # multiply-adds for one input
    params: int  # weights + bias of this layer


@dataclass
class ComplexityReport:
    input_size: tuple[int, ...]  # (C, H, W) of one input
    layers: list[LayerCost] = field(default_factory=list)  # conv and fc layers in forward order
    total_params: int = 0  # every parameter of the model (PReLU slopes included)

    @property
    def total_macs(self) -> int:
        """Multiply-adds of all conv and fc layers for one input."""
        return sum(layer.macs for layer in self.layers)

    @property
    def depth(self) -> int:
        """Number of conv + fc layers (distinct modules), the paper's depth."""
        return len({layer.name for layer in self.layers})

    @property
    def other_params(self) -> int:
        """Parameters outside conv and fc layers (PReLU slopes, ...)."""
        counted = {layer.name: layer.params for layer in self.layers}
        return self.total_params - sum(counted.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "total_macs": self.total_macs,
            "total_params": self.total_params,
            "depth": self.depth,
            "layers": [{**asdict(layer), "output_shape": list(layer.output_shape)} for layer in self.layers],
        }

    def _rows(self) -> list[tuple[str, str, str, str, str]]:
        rows = [
            (
                layer.name,
                layer.kind,
                "×".join(map(str, layer.output_shape)),
                f"{layer.macs:,}",
                f"{layer.params:,}",
            )
            for layer in self.layers
        ]
        if self.other_params:
            rows.append(("(other: PReLU slopes, ...)", "", "", "0", f"{self.other_params:,}"))
        rows.append(("total", f"depth {self.depth}", "", f"{self.total_macs:,}", f"{self.total_params:,}"))
        return rows

    def to_markdown(self) -> str:
        return markdown_table(_HEADER, self._rows(), "lllrr")

    def __str__(self) -> str:
        lines = aligned_lines(_HEADER, self._rows(), left=3)
        size = "×".join(map(str, self.input_size))
        lines.append(
            f"input {size}: {self.total_macs / 1e10:.3f}×10¹⁰ multiply-adds, "
            f"{self.total_params / 1e6:.2f} M params"
        )
        return "\n".join(lines)


def complexity(model: nn.Module, input_size: int | Sequence[int] = (3, 224, 224)) -> ComplexityReport:
    """Per-layer multiply-adds and parameters of `model` for one input of `input_size`.

    `input_size` is (C, H, W), or (H, W) / a side length with C read from the first conv layer.
    Runs on the meta device in eval mode (dropout off), so no real memory is used; the model's own
    parameters, mode and device are left as they were. An input the model cannot take (too small for
    its pools, wrong channel count) raises ValueError.

    >>> from rectifiers.models import create_model
    >>> with torch.device("meta"):
    ...     net = create_model("model_a", init=False)
    >>> round(complexity(net).total_macs / 1e10, 2)
    1.91
    """
    size = _input_size(model, input_size)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    tensors = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    meta = {name: torch.empty_like(t, device="meta") for name, t in tensors}

    report = ComplexityReport(input_size=size, total_params=sum(p.numel() for p in model.parameters()))
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, _ConvNd | nn.Linear):
            handles.append(module.register_forward_hook(functools.partial(_record, name, report.layers)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            functional_call(model, meta, (torch.empty((1, *size), device="meta", dtype=dtype),))
    except RuntimeError as err:  # shape errors surface here, e.g. an input too small for the pools
        raise ValueError(f"the model cannot run on an input of size {size}: {err}") from err
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return report


def _input_size(model: nn.Module, input_size: int | Sequence[int]) -> tuple[int, ...]:
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) == 2:
        conv = next((m for m in model.modules() if isinstance(m, _ConvNd)), None)
        if conv is None:
            raise ValueError("input_size must be (C, H, W): the model has no conv layer to read C from")
        size = (conv.in_channels, *size)
    if not size or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"input_size must be positive integers (C, H, W), got {input_size!r}")
    return size


def _record(
    name: str,
    rows: list[LayerCost],
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    output: torch.Tensor,
) -> None:
    """A forward hook (with `name` and `rows` bound) appending the layer's cost, batch of one, to `rows`."""
    if isinstance(module, _ConvNd):
        taps = math.prod(module.kernel_size)
        if module.transposed:  # each input value meets every tap of C_out / groups filters
            macs = inputs[0][0].numel() * (module.out_channels // module.groups) * taps
        else:  # each output value is a dot product over C_in / groups · k_h · k_w weights
            macs = output[0].numel() * (module.in_channels // module.groups) * taps
        kind = "conv"
    else:
        macs = output[0].numel() * module.in_features
        kind = "fc"
    params = sum(p.numel() for p in module.parameters(recurse=False))
    rows.append(LayerCost(name, kind, tuple(output.shape[1:]), macs, params))
