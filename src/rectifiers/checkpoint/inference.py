"""A trained model rebuilt from a checkpoint, and how it sees images, for evaluation and prediction.

`load_model(path)` gives the module alone; `load_member(path)` gives a `Member`: the module with its
training crop, eval resize, input normalization, class names and whether it trained on mirrored
images, which `rectifiers.evaluate`, `rectifiers.predict` and `rectifiers.export` all view images by.
`borrowed` lends a caller's module to an inference pass and gives it back as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rectifiers.activations import PReLU
from rectifiers.checkpoint.store import CheckpointError, first_line, load_checkpoint, saved_config
from rectifiers.models import create_model
from rectifiers.transforms import Normalize


@dataclass
class Member:
    """One model of an evaluation (an ensemble has several) and how it sees images."""

    model: nn.Module
    crop: int  # its training crop side: the view size, and the dense window's size in pixels
    normalize: Normalize | None = None  # its input normalization (None: float pixel values)
    name: str = "model"  # shown in results (a checkpoint's path)
    eval_resize: int | None = None  # the shorter side its training run validated at
    data_spec: str | None = None  # the data it was trained on
    classes: list[str] | None = None  # its class names, index = label
    flip: bool = True  # trained on mirrored images too (data.flip > 0): 10-view and dense add mirrors
    window: tuple[int, int] = (0, 0)  # last-conv-map size of a crop (dense testing)


def build_model(state: dict[str, Any], source: str | Path = "checkpoint") -> nn.Module:
    """Rebuild the module a loaded checkpoint was trained with from its `model_args`, with its weights."""
    user_class = state["model_args"].get("class")
    if user_class is not None:  # a model passed to `fit`: the file holds its weights, not its code
        raise CheckpointError(
            f"{source}: holds the weights of a {user_class} passed to fit, which a checkpoint cannot "
            f"rebuild; build a {user_class} and call its load_state_dict(load_checkpoint(path)['model'])"
        )
    model = create_model(**{**state["model_args"], "init": False})
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{source}: weights do not fit model {state['model_args'].get('name')}: {first_line(err)}"
        ) from None
    return model


def load_model(
    path: str | Path, *, to_torch_modules: bool = False, device: str | torch.device = "cpu"
) -> nn.Module:
    """A trained model, ready for inference (eval mode), from a checkpoint file.

    With `to_torch_modules=True` every rectifiers PReLU is replaced by an equal `torch.nn.PReLU`,
    so the module runs with plain PyTorch only.
    """
    state = load_checkpoint(path)
    model = build_model(state, path)
    model.classes = list(state["classes"])  # type: ignore[assignment]
    if to_torch_modules:
        model = swap_to_torch_modules(model)
    return model.to(device).eval()


def load_member(path: str | Path, device: str | torch.device = "cpu") -> Member:
    """A checkpoint's model (rebuilt from its `model_args`), crop, normalization and class names.

    Raises FileNotFoundError for a missing file and CheckpointError (a ValueError) naming the file
    for a truncated, corrupt or incomplete one.
    """
    state = load_checkpoint(path)
    model = build_model(state, path)
    data = saved_config(state, path).data
    if state.get("normalization") is None:
        raise CheckpointError(f"{path}: no input normalization stored in the checkpoint")
    try:
        normalize = Normalize.from_state_dict(state["normalization"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: unusable normalization: {err}") from None
    return Member(
        model=model.to(device).eval(),
        crop=data.crop,
        normalize=normalize,
        name=str(path),
        eval_resize=data.eval_resize,
        data_spec=data.spec,
        classes=[str(c) for c in state["classes"]],
        flip=data.flip > 0,
    )


def as_member(
    item: str | Path | Member | nn.Module,
    *,
    crop: int | None = None,
    normalize: Normalize | None = None,
    device: str | torch.device = "cpu",
) -> Member:
    """A `Member` for a checkpoint path (loaded onto `device`), a copy of a given `Member`, or a bare
    module seen at `crop` with `normalize` (class names from its `classes` attribute, if any).
    A given module is not moved: `borrowed` does that for the length of a pass."""
    if isinstance(item, Member):
        return dataclasses.replace(item)
    if isinstance(item, nn.Module):
        if crop is None:
            raise ValueError("viewing images with a bare nn.Module needs crop= (its training crop side)")
        classes = getattr(item, "classes", None)
        return Member(item, crop, normalize, name=type(item).__name__, classes=classes)
    return load_member(item, device)


@contextlib.contextmanager
def borrowed(
    model: nn.Module, device: torch.device, memory_format: torch.memory_format = torch.preserve_format
) -> Iterator[nn.Module]:
    """`model` in eval mode on `device` (in `memory_format`) for the block, then back as it was.

    The caller's module keeps its train/eval modes, and its parameters, gradients and buffers their
    own tensors (so their device, dtype and memory format), whatever the block does with them.
    """
    modes = [(module, module.training) for module in model.modules()]
    params = [(p, p.data, None if p.grad is None else p.grad.data) for p in model.parameters()]
    buffers = list(model.named_buffers())
    try:
        yield model.to(device, memory_format=memory_format).eval()
    finally:
        for module, training in modes:
            module.training = training
        for p, data, grad in params:
            p.data = data
            if grad is not None and p.grad is not None:
                p.grad.data = grad
        for name, buffer in buffers:
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner), attr, buffer)


def swap_to_torch_modules(model: nn.Module) -> nn.Module:
    """Replace each `rectifiers.PReLU` (channel axis 1) with a `torch.nn.PReLU` holding the same slopes.

    Works in place and returns `model` (the replacement itself when `model` is a PReLU). The new
    modules keep the slopes' device, dtype and `requires_grad`, and the old modules' train/eval mode.
    """
    if isinstance(model, PReLU):
        return _torch_prelu(model, type(model).__name__)
    for name, child in list(model.named_children()):
        if isinstance(child, PReLU):
            setattr(model, name, _torch_prelu(child, name))
        else:
            swap_to_torch_modules(child)
    return model


def _torch_prelu(module: nn.Module, name: str) -> nn.PReLU:
    if module.num_parameters > 1 and module.dim != 1:
        raise ValueError(
            f"{name}: torch.nn.PReLU needs the channel axis at dim 1, this one uses {module.dim}"
        )
    weight = module.weight
    plain = nn.PReLU(module.num_parameters, init=module.init, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        plain.weight.copy_(weight)
    plain.weight.requires_grad_(weight.requires_grad)
    return plain.train(module.training)
