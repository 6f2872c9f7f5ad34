"""Export a trained model to ONNX and check the file against PyTorch.

    export_onnx(model, path, input_size=(C, H, W))   -> path of a single-file .onnx model
    verify_onnx(path, model, inputs)                  -> max |onnxruntime - PyTorch| over the outputs
    export_checkpoint(checkpoint, path)               -> both, on random and real inputs (the CLI)

The exporter is `torch.onnx.export(..., dynamo=True)`: the TorchScript one has no ONNX mapping for
`aten::_prelu_kernel`, which `rectifiers.PReLU` calls.

PReLU slopes: ONNX `PRelu` broadcasts the slope right-aligned, and several importers (TensorRT, TVM)
reject the (1, C, 1, 1) / (1, C) slopes the exporter writes, so they are reshaped to (C, 1, 1) for
conv maps, (C,) after fc layers and (1,) when shared; dropping leading 1s changes no value.

The graph maps "input" float32 (N, C, H, W), batch dynamic (H, W too with `dynamic_size`: SPP bins
export as comparisons on the map size), to "logits" (N, classes). Normalization stays outside the
graph (its statistics, the class names and eval resize/crop go into the metadata) unless
`--include-normalization` bakes it in as one multiply-add, so the input is pixels 0..255; a per-pixel
mean image only fits a fixed-size graph. onnx, onnxruntime and onnxscript are the optional extra
`rectifiers[export]`, imported only where used.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rectifiers.checkpoint.inference import borrowed, load_member
from rectifiers.data import open_dataset
from rectifiers.models import model_device
from rectifiers.transforms import Normalize, center_crop, resize_shorter
from rectifiers.views import normalize_input

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# ONNX files are protobufs, limited to 2 GiB; larger weights go to a side file `NAME.data`.
_EXTERNAL_DATA_BYTES = 1 << 30
_EXTRA_HINT = "ONNX export needs the optional extra: pip install 'rectifiers[export]'"


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{_EXTRA_HINT} ({module} is missing: {err})") from err


# ----------------------------------------------------------------------------------- normalization


class NormalizedModel(nn.Module):
    """`model(x * mul + add)`: a `Normalize` folded into the module so an export carries it.

    y = (x · scale - mean) / std  =  x · (scale / std) + (-mean / std), per channel (or per pixel for
    a mean image, which fixes the input size). Input: float pixel values 0..255.
    """

    def __init__(self, model: nn.Module, normalize: Normalize) -> None:
        super().__init__()
        self.model = model
        mul, add = normalize.affine()
        self.register_buffer("mul", mul.float())
        self.register_buffer("add", add.float())

    def forward(self, x: Tensor) -> Tensor:
        return self.model(torch.addcmul(self.add, x, self.mul))


# ------------------------------------------------------------------------------------------ export


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_size: Sequence[int],
    dynamic_size: bool = False,
    opset: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Export `model` (put in eval mode) to the ONNX file `path` and return the path.

    Args:
        input_size: (C, H, W) of the example input: the training crop, e.g. (3, 224, 224).
        dynamic_size: make H and W dynamic (any size from the smallest the conv layers accept); the
            batch is always dynamic.
        opset: ONNX opset version (None: the exporter's default).
        metadata: extra key/value strings stored in the file's `metadata_props`.

    PReLU slopes are written as (C, 1, 1) / (C,) / (1,). The file is checked
    with `onnx.checker.check_model(full_check=True)`; a failure raises `onnx.checker.ValidationError`.
    """
    onnx = _require("onnx")
    _require("onnxscript")
    size = tuple(input_size)
    if len(size) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(f"input_size must be (C, H, W) of positive ints, got {input_size!r}")
    c, h, w = size
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise ValueError(f"opset must be an ONNX opset version (an int >= 7), got {opset!r}")
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"the ONNX file name should end in .onnx, got {path}")
    model.eval()
    device = model_device(model)
    example = torch.randn(2, c, h, w, device=device)  # batch 2: a batch of 1 would be specialized
    batch = torch.export.Dim("batch")
    dims: dict[int, Any] = {0: batch}
    if dynamic_size:
        low = _min_side(model, (h, w))
        dims[2] = torch.export.Dim("height", min=low[0])
        dims[3] = torch.export.Dim("width", min=low[1])
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=(dims,),
            opset_version=opset,
            verbose=False,
        )
    proto = program.model_proto
    canonicalize_prelu_slopes(proto)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > _EXTERNAL_DATA_BYTES
    onnx.save_model(proto, str(path), save_as_external_data=large, location=f"{path.name}.data")
    onnx.checker.check_model(str(path), full_check=True)
    return path


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's internal chatter (a warning per missing torchvision op, deprecation
    notes of torch's own pytree code); errors still propagate."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.|copyreg")
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
            yield
    finally:
        logger.setLevel(level)


def _min_side(model: nn.Module, size: tuple[int, int]) -> tuple[int, int]:
    """The smallest (H, W) the model's conv layers accept (its `feature_size` raises below it); the
    export size itself for models without `feature_size`."""
    feature_size = getattr(model, "feature_size", None)
    if isinstance(model, NormalizedModel):
        feature_size = getattr(model.model, "feature_size", None)
    if not callable(feature_size):
        return size
    low = []
    for axis, side in enumerate(size):
        best = side
        for s in range(side - 1, 1, -1):  # 1 is excluded: torch.export specializes size-1 dims
            try:
                feature_size((s, size[1]) if axis == 0 else (size[0], s))
            except ValueError:
                break
            best = s
        low.append(best)
    return low[0], low[1]


def canonicalize_prelu_slopes(proto: Any) -> int:
    """Reshape in place the slope initializer of every PRelu node of an `onnx.ModelProto` to (C,) and
    one 1 per axis after the channel axis, or (1,) when shared; return the number of PRelu nodes.

    Raises RuntimeError for a slope that is not an initializer or has more than one non-1 axis.
    """
    from onnx import numpy_helper

    graph = proto.graph
    inits = {init.name: init for init in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    done: dict[str, str] = {}  # original slope name -> canonical initializer name
    count = 0
    for node in graph.node:
        if node.op_type != "PRelu":
            continue
        count += 1
        name = node.input[1]
        if name in done:
            node.input[1] = done[name]
            continue
        init = inits.get(name)
        if init is None:
            raise RuntimeError(f"PRelu node {node.name!r}: its slope {name!r} is not a constant initializer")
        slope = numpy_helper.to_array(init)
        shape = _canonical_slope_shape(slope.shape, node.name)
        target = name
        if any(other.op_type != "PRelu" for other in consumers[name]):
            target = f"{name}_prelu_slope"  # shared with another op: reshape a copy only
        new = numpy_helper.from_array(slope.reshape(shape), target)
        if target == name:
            init.CopyFrom(new)
        else:
            graph.initializer.append(new)
        node.input[1] = done[name] = target
    # value_info may still describe the old shapes
    stale = set(done) | set(done.values())
    kept = [vi for vi in graph.value_info if vi.name not in stale]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return count


def _canonical_slope_shape(shape: tuple[int, ...], node: str) -> tuple[int, ...]:
    if math.prod(shape) == 1:
        return (1,)
    channel_axes = [i for i, n in enumerate(shape) if n != 1]
    if len(channel_axes) != 1:
        raise RuntimeError(f"PRelu node {node!r}: slope of shape {shape} is not per channel")
    axis = channel_axes[0]
    return (shape[axis],) + (1,) * (len(shape) - 1 - axis)


def prelu_slope_shapes(path: str | Path) -> list[tuple[int, ...]]:
    """Shapes of the slope initializers of the PRelu nodes of an ONNX file, in graph order."""
    onnx = _require("onnx")
    proto = onnx.load(str(path))
    shapes = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    return [shapes.get(n.input[1], ()) for n in proto.graph.node if n.op_type == "PRelu"]


# ------------------------------------------------------------------------------------------ verify


def verify_onnx(path: str | Path, model: nn.Module, inputs: Tensor | Sequence[Tensor]) -> float:
    """Run the ONNX file with onnxruntime (CPU) and `model` (lent in eval mode, no grad) on each input
    batch; return the largest absolute difference between their outputs over all batches."""
    ort = _require("onnxruntime")
    batches = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if not batches:
        raise ValueError("verify_onnx needs at least one input batch")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    device = model_device(model)
    worst = 0.0
    with borrowed(model, device), torch.no_grad():
        for x in batches:
            expected = model(x.to(device)).float().cpu()
            (got,) = session.run(None, {name: x.detach().float().cpu().numpy()})
            got_t = torch.from_numpy(got)
            if got_t.shape != expected.shape:
                raise ValueError(
                    f"{path}: onnxruntime output {tuple(got_t.shape)} != PyTorch {tuple(expected.shape)}"
                )
            worst = max(worst, float((got_t - expected).abs().max()))
    return worst


# ----------------------------------------------------------------------------------- checkpoints


@dataclass
class ExportReport:
    """What `export_checkpoint` wrote and measured."""

    path: Path
    input_size: tuple[int, int, int]  # (C, H, W) of the export example
    opset: int
    slope_shapes: list[tuple[int, ...]]  # of the PRelu nodes, in graph order
    normalization_in_graph: bool
    dynamic_size: bool  # H and W dynamic (the batch always is)
    # one row per comparison: kind ("random" | "real"), input shape, max abs difference, note
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max((row["max_abs_diff"] for row in self.checks), default=math.nan)

    def __str__(self) -> str:
        shapes = sorted(set(self.slope_shapes), key=lambda s: (len(s), s))
        lines = [
            f"wrote {self.path} (opset {self.opset}; input '{INPUT_NAME}' float32 "
            f"(N, {', '.join(map(str, self.input_size))})"
            + (", H and W dynamic" if self.dynamic_size else "")
            + f"; output '{OUTPUT_NAME}' (N, classes))",
            "normalization: "
            + (
                "in the graph (input: pixel values 0..255)"
                if self.normalization_in_graph
                else "outside the graph (input: normalized pixels; see the metadata)"
            ),
            f"PRelu nodes: {len(self.slope_shapes)}, slope shapes {', '.join(map(str, shapes)) or '-'}",
            "onnx.checker: ok",
            "onnxruntime vs PyTorch, max abs difference of the logits:",
        ]
        for row in self.checks:
            shape = "×".join(map(str, row["shape"]))
            note = f"  ({row['note']})" if row.get("note") else ""
            lines.append(f"  {row['kind']:<6} {shape:<16} {row['max_abs_diff']:.3g}{note}")
        return "\n".join(lines)


def export_checkpoint(
    checkpoint: str | Path,
    path: str | Path,
    *,
    dynamic_size: bool = False,
    opset: int | None = None,
    include_normalization: bool = False,
    samples: int = 8,
    seed: int = 0,
) -> ExportReport:
    """Export a checkpoint's model to `path` and compare onnxruntime with PyTorch.

    The export size is the checkpoint's training crop. Comparisons: a random batch (N(0, 1) inputs,
    or uniform 0..255 pixels with the normalization in the graph) and `samples` real images of the
    checkpoint's validation data (resized, center-cropped and normalized as in its evaluation) when
    that data can be opened here; with `dynamic_size`, both again at a second, non-square size.
    """
    member = load_member(checkpoint)
    model, normalize = member.model, member.normalize
    model_args = dict(getattr(model, "build_args", {}))
    in_chans = int(model_args.get("in_chans", 3))
    crop = member.crop
    graph_model: nn.Module = model
    if include_normalization:
        if normalize is None:
            raise ValueError(f"{checkpoint}: no normalization stored to include")
        if normalize.mode == "pixel" and dynamic_size:
            raise ValueError(
                "a per-pixel mean image fixes the input size: use --include-normalization without "
                "--dynamic-size, or keep the normalization outside the graph"
            )
        graph_model = NormalizedModel(model, normalize).eval()
    metadata = {
        "rectifiers.classes": json.dumps(member.classes),
        "rectifiers.model_args": json.dumps(model_args, default=list),
        "rectifiers.eval_resize": str(member.eval_resize or crop),
        "rectifiers.crop": str(crop),
        "rectifiers.input": (
            "float32 pixel values 0..255, resized (shorter side eval_resize) and center-cropped"
            if include_normalization
            else "float32 (pixels * scale - mean) / std of resized, center-cropped 0..255 pixels"
        ),
    }
    if normalize is not None:
        metadata["rectifiers.normalization"] = json.dumps(_normalization_json(normalize))
    out = export_onnx(
        graph_model,
        path,
        input_size=(in_chans, crop, crop),
        dynamic_size=dynamic_size,
        opset=opset,
        metadata=metadata,
    )
    onnx = _require("onnx")
    proto = onnx.load(str(out), load_external_data=False)
    opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    report = ExportReport(
        out, (in_chans, crop, crop), opset_used, prelu_slope_shapes(out), include_normalization, dynamic_size
    )
    sizes = [(crop, crop)]
    if dynamic_size:
        sizes.append(second_size(crop))
    gen = torch.Generator().manual_seed(seed)
    real, note = _real_images(member.data_spec, samples)
    for size in sizes:
        if include_normalization:
            x = torch.rand(2, in_chans, *size, generator=gen) * 255
        else:
            x = torch.randn(2, in_chans, *size, generator=gen)
        report.checks.append(_check(out, graph_model, "random", x, size))
        if real is not None:
            xr = _prepare(
                real, size, member.eval_resize or crop, crop, None if include_normalization else normalize
            )
            report.checks.append(_check(out, graph_model, "real", xr, size, note))
        elif size == sizes[0]:
            report.checks[-1]["note"] = f"no real images: {note}"
    return report


def second_size(crop: int) -> tuple[int, int]:
    """The other (H, W) a dynamic-size export is checked at: larger and non-square."""
    return crop + max(1, crop // 2), crop + max(1, crop // 4)


def _check(path: Path, model: nn.Module, kind: str, x: Tensor, size: tuple[int, int], note: str = "") -> dict:
    return {
        "kind": kind,
        "shape": tuple(x.shape),
        "size": tuple(size),
        "max_abs_diff": verify_onnx(path, model, x),
        "note": note,
    }


def _normalization_json(normalize: Normalize) -> dict[str, Any]:
    mean = normalize.mean
    return {
        "mode": normalize.mode,
        # a mean image is summarized by its channel means (the full image is in the checkpoint)
        "mean": mean.mean(dim=(1, 2)).tolist() if normalize.mode == "pixel" else mean.flatten().tolist(),
        "std": None if normalize.std is None else normalize.std.flatten().tolist(),
        "scale": normalize.scale,
        "formula": "(pixels * scale - mean) / std, per channel",
    }


def _real_images(spec: str | None, samples: int) -> tuple[Tensor | None, str]:
    """Up to `samples` uint8 validation images of the data set `spec` (one size), or None and why."""
    if spec is None:
        return None, "the checkpoint names no data set"
    if samples < 1:
        return None, "samples=0"
    try:
        # memory_budget=0: file sets are not decoded as a whole just to take a few images
        ds = open_dataset(spec, "val", memory_budget=0, cache=False, workers=0)
        step = max(1, len(ds) // samples)
        images = [ds[i][0] for i in range(0, len(ds), step)][:samples]
    except (OSError, ValueError, ImportError) as err:
        return None, f"{spec}: {err}"
    first = images[0].shape
    images = [im for im in images if im.shape == first]
    return torch.stack(images), f"{spec} val"


def _prepare(
    images: Tensor, size: tuple[int, int], resize: int, crop: int, normalize: Normalize | None
) -> Tensor:
    """The evaluation view of uint8 images at an input of `size`: shorter side resized (to `resize`
    at the crop size, else so the window fits), center-cropped, normalized."""
    side = resize if size == (crop, crop) else max(size)
    x = center_crop(resize_shorter(images, side), size)
    return normalize_input(x, normalize)
