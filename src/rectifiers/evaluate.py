"""Evaluate trained models: single-view, 10-view and dense multi-scale testing, ensembles, exact metrics.

`evaluate(checkpoints, dataset, views=..., scales=...)` scores every image of a split with one of the
view functions of `rectifiers.views` at each scale, and combines softmax probabilities by averaging:

    member score   = mean over scales of its view scores (dense at one scale already averages its
                     windows and the mirrored image; "single" / "ten" at several scales average the
                     views taken at each resize)
    ensemble score = mean over members (models, possibly of different architectures, crops and
                     normalizations: each member sees the images its own way)

From the ensemble score: top-1 and top-5 error, the confusion counts (true class × top-1 class),
per-class top-1 and top-5 error (the paper's per-class analysis, Sec. 4), and the same top-1/top-5
errors for every member and every scale on the side. Everything is summed as counts and all-reduced
once, so under `torchrun` (rank r scores images r, r + W, r + 2W, ...) every image counts exactly once.

Views are made per image in the loader's workers and scored in whole batches (`view_batches`), so a
val folder of mixed-size photos runs at full batch size. Mirrored views (10-view, dense) follow each
model's training (`Member.flip`, from the checkpoint's data.flip), unless `flip=` overrides it. A file
that cannot be decoded is skipped and named in `results["skipped"]`; no other image stands in for it.

The paper leaves open the stride of the dense windows and the set of scales (notes 1.11): the
stride defaults to 1 (every window position, OverFeat's and VGG's dense evaluation), the scales to
the checkpoint's own validation resize; Table 4's combination is scales=(256, 384, 480).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.utils.data
from torch import Tensor, nn

from rectifiers import distributed
from rectifiers.checkpoint import CheckpointError, build_model_from_checkpoint, load_checkpoint
from rectifiers.data import ImageDataset, open_dataset
from rectifiers.metrics import error_from_counts, per_class_counts, top5_is_informative, topk_correct
from rectifiers.transforms import Normalize
from rectifiers.view_batches import ViewBatch, ViewPlan, view_batches
from rectifiers.views import MAX_WINDOWS, VIEWS, feature_window, score_views

SCORES_FILE = "scores.pt"
RESULTS_FILE = "results.json"


# ------------------------------------------------------------------------------------------ members


@dataclass
class Member:
    """One model of an evaluation (an ensemble has several) and how it sees images."""

    model: nn.Module  # in eval mode, on the evaluation device
    crop: int  # its training crop side: the view size, and the dense window's size in pixels
    normalize: Normalize | None = None  # its input normalization (None: float pixel values)
    name: str = "model"  # shown in results (a checkpoint's path)
    eval_resize: int | None = None  # the shorter side its training run validated at
    data_spec: str | None = None  # the data it was trained on
    classes: list[str] | None = None  # its class names, index = label
    flip: bool = True  # trained on mirrored images too (data.flip > 0): 10-view and dense add mirrors
    window: tuple[int, int] = field(default=(0, 0))  # last-conv-map size of a crop (set by evaluate)


def load_member(path: str | Path, device: str | torch.device = "cpu") -> Member:
    """A checkpoint's model (rebuilt from its `model_args`), crop, normalization and class names.

    Raises FileNotFoundError for a missing file and CheckpointError (a ValueError) naming the file
    for a truncated, corrupt or incomplete one.
    """
    state = load_checkpoint(path)
    model = build_model_from_checkpoint(state, path)
    try:
        data = state["config"]["data"]
        crop, eval_resize, spec = int(data["crop"]), int(data["eval_resize"]), str(data["spec"])
        flip = float(data["flip"]) > 0
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(
            f"{path}: its config lacks data.crop / data.eval_resize / data.spec / data.flip"
        ) from None
    if state.get("normalization") is None:
        raise CheckpointError(f"{path}: no input normalization stored in the checkpoint")
    try:
        normalize = Normalize.from_state_dict(state["normalization"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: unusable normalization: {err}") from None
    return Member(
        model=model.to(device).eval(),
        crop=crop,
        normalize=normalize,
        name=str(path),
        eval_resize=eval_resize,
        data_spec=spec,
        classes=[str(c) for c in state["classes"]],
        flip=flip,
    )


def _as_member(
    item: str | Path | Member | nn.Module, crop: int | None, normalize: Normalize | None, device: torch.device
) -> Member:
    if isinstance(item, Member):
        item.model.to(device).eval()
        return item
    if isinstance(item, nn.Module):
        if crop is None:
            raise ValueError("evaluating a bare nn.Module needs crop= (its training crop side)")
        return Member(item.to(device).eval(), crop, normalize, name=type(item).__name__)
    return load_member(item, device)


def _check_member(member: Member, dataset: ImageDataset) -> None:
    """A model that cannot score this data set's classes or channels is an error naming it."""
    k = len(dataset.classes)
    args = getattr(member.model, "build_args", {})
    classes = getattr(member.model, "num_classes", None)
    if classes is not None and classes != k:
        raise ValueError(
            f"{member.name}: the model has {classes} classes but {dataset.source} has {k}; "
            "evaluate it on the data it was trained for"
        )
    in_chans = args.get("in_chans")
    if in_chans is not None and in_chans != dataset.num_channels:
        raise ValueError(
            f"{member.name}: the model takes {in_chans}-channel images, {dataset.source} has "
            f"{dataset.num_channels}-channel ones"
        )
    if member.classes is not None and member.classes != list(dataset.classes):
        warnings.warn(
            f"{member.name}: its class names differ from {dataset.source}'s (same count, labels compared "
            "by index)",
            stacklevel=3,
        )


# ------------------------------------------------------------------------------------------ scores


def member_scores(
    member: Member,
    batch: ViewBatch,
    plan: ViewPlan,
    *,
    flip: bool,
    stride: int = 1,
    max_windows: int = MAX_WINDOWS,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> Tensor:
    """(S, B, K) probabilities of one member at each of the plan's scales. A forward pass holds about
    `batch_size` crops' worth of pixels: a tenth of the images for 10-view, and for dense testing the
    windows each image (and its mirror) amounts to (larger batches only run slower on CPU, where the
    activations then spill out of the caches)."""

    def score(x: Tensor) -> Tensor:
        return score_views(
            member.model,
            x.to(device) if device is not None else x,
            plan.views,
            normalize=member.normalize,
            window=member.window,
            stride=stride,
            flip=flip,
            max_windows=max_windows,
        )

    crop2 = member.crop * member.crop
    out = []
    for scale in plan.scales:
        prepared = batch.views[plan.key(member.crop, scale, flip)]
        if plan.views == "dense":
            parts, positions = [], []
            for where, images in prepared:  # type: ignore[misc]
                per_image = (1 + flip) * max(1.0, images[0, 0].numel() / crop2)
                parts.append(_in_chunks(score, images, 0, max(1, int(batch_size / per_image))))
                positions.append(where)
            scores = torch.cat(parts)[torch.cat(positions).argsort().to(parts[0].device)]
        else:
            assert isinstance(prepared, Tensor)
            dim, per_image = (1, prepared.shape[0]) if plan.views == "ten" else (0, 1)
            scores = _in_chunks(score, prepared, dim, max(1, batch_size // per_image))
        out.append(scores)
    return torch.stack(out)


def _in_chunks(score: Callable[[Tensor], Tensor], x: Tensor, dim: int, step: int) -> Tensor:
    """score(x) of slices of `step` images along `dim`, concatenated."""
    return torch.cat(
        [score(x.narrow(dim, lo, min(step, x.shape[dim] - lo))) for lo in range(0, x.shape[dim], step)]
    )


def _topk_hits(scores: Tensor, targets: Tensor, k: int) -> Tensor:
    """(N,) bool: the target is among the k highest scores."""
    return scores.topk(min(k, scores.shape[1]), dim=1).indices.eq(targets[:, None]).any(dim=1)


class _Counts:
    """Every sum of one evaluation, flattened into one float64 tensor for a single all-reduce."""

    def __init__(self, members: int, scales: int, classes: int) -> None:
        self.shapes = {
            "n": (1,),
            "topk": (2,),  # ensemble top-1, top-5 correct
            "member_topk": (members, 2),
            "scale_topk": (scales, 2),  # ensemble at each scale
            "member_scale_topk": (members, scales, 2),
            "confusion": (classes, classes),  # true class, top-1 class
            "class_top5": (classes,),  # top-5 correct per true class
        }
        self.values = {k: torch.zeros(s, dtype=torch.float64) for k, s in self.shapes.items()}

    def add(self, per_view: Tensor, targets: Tensor) -> Tensor:
        """Count a batch from its (members, scales, B, K) probabilities; returns the ensemble's (B, K)."""
        members, scales, _, k = per_view.shape
        member = per_view.mean(dim=1)  # (M, B, K)
        ensemble = member.mean(dim=0)  # (B, K)
        v = self.values
        v["n"] += targets.numel()
        v["topk"] += topk_correct(ensemble, targets).cpu()
        v["member_topk"] += torch.stack([topk_correct(s, targets) for s in member]).cpu()
        v["scale_topk"] += torch.stack([topk_correct(s, targets) for s in per_view.mean(dim=0)]).cpu()
        flat = per_view.reshape(members * scales, *per_view.shape[2:])
        v["member_scale_topk"] += (
            torch.stack([topk_correct(s, targets) for s in flat]).view(members, scales, 2).cpu()
        )
        v["confusion"] += per_class_counts(ensemble, targets, k).cpu().double()
        hits5 = _topk_hits(ensemble, targets, 5).double()
        v["class_top5"] += torch.bincount(targets, weights=hits5, minlength=k).cpu()
        return ensemble

    def all_reduce(self, device: torch.device) -> None:
        flat = torch.cat([t.flatten() for t in self.values.values()]).to(device)
        flat = distributed.all_reduce_sum(flat).cpu()
        for key, t in zip(self.values, flat.split([t.numel() for t in self.values.values()]), strict=True):
            self.values[key] = t.view(self.shapes[key])


def _errors(correct: Tensor, n: float) -> dict[str, float]:
    return {
        "top1_err": error_from_counts(float(correct[0]), n),
        "top5_err": error_from_counts(float(correct[1]), n),
    }


def _summary(counts: _Counts, classes: Sequence[str]) -> dict[str, Any]:
    v = counts.values
    n = float(v["n"][0])
    confusion = v["confusion"].round().to(torch.int64)
    per_class = confusion.sum(dim=1).double()
    diag = confusion.diagonal().double()
    return {
        **_errors(v["topk"], n),
        "n_images": int(n),
        "num_classes": len(classes),
        "classes": list(classes),
        "per_class_err": [
            error_from_counts(float(c), float(t)) for c, t in zip(diag, per_class, strict=True)
        ],
        "per_class_top5_err": [
            error_from_counts(float(c), float(t)) for c, t in zip(v["class_top5"], per_class, strict=True)
        ],
        "per_class_images": per_class.to(torch.int64).tolist(),
        "confusion": confusion.tolist(),
    }


def metrics_from_scores(scores: Tensor, targets: Tensor, classes: Sequence[str] | int) -> dict[str, Any]:
    """top-1/top-5 error, per-class errors and confusion counts of given (N, K) scores, e.g. saved
    scores of several runs averaged afterwards (`load_scores`)."""
    names = [f"class{i}" for i in range(classes)] if isinstance(classes, int) else list(classes)
    if scores.ndim != 2 or scores.shape[1] != len(names) or targets.shape != scores.shape[:1]:
        raise ValueError(
            f"expected scores (N, {len(names)}) and targets (N,), got {tuple(scores.shape)} and "
            f"{tuple(targets.shape)}"
        )
    counts = _Counts(1, 1, len(names))
    counts.add(scores[None, None].float(), targets.to(torch.int64))
    return _summary(counts, names)


# --------------------------------------------------------------------------------------- evaluate


def _resolve_scales(scales: Sequence[int] | None, members: list[Member]) -> tuple[int, ...]:
    if scales is None or len(scales) == 0:
        first = members[0]
        return (first.eval_resize or first.crop,)
    out = tuple(scales)
    for s in out:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"scales must be positive integers, got {list(out)}")
    return out


def evaluate(
    models: Sequence[str | Path | Member | nn.Module],
    dataset: ImageDataset | str | None = None,
    *,
    split: str = "val",
    views: str = "single",
    scales: Sequence[int] | None = None,
    batch_size: int = 64,
    stride: int = 1,
    device: str | torch.device = "cpu",
    save_scores: bool = False,
    crop: int | None = None,
    normalize: Normalize | None = None,
    workers: int = 0,
    max_windows: int = MAX_WINDOWS,
    channels_last: bool = True,
    flip: bool | None = None,
) -> dict[str, Any]:
    """Score `dataset` with one model or an ensemble and return the metrics as a dict.

    Args:
        models: checkpoint paths (each rebuilds its own model, crop and normalization), `Member`s, or
            bare modules (then `crop` and `normalize` say how they see images). All must output the
            data set's class count; a mismatch is a ValueError naming the model.
        dataset: an `ImageDataset`, a data spec (its `split` is opened), or None for the first
            checkpoint's training data.
        views: "single" (center crop), "ten" (10 views) or "dense" (dense windows on the conv map,
            image and mirror), see `rectifiers.views`.
        scales: shorter sides to test at (the resize before the crops, or dense's s); scores are
            averaged over them. Default: the first checkpoint's validation resize (else its crop).
        batch_size: images read at a time and crops per forward pass (per process): 10-view and dense
            testing pass proportionally fewer images at once.
        stride: dense windows' step on the conv map.
        device: "cpu", "cuda", "cuda:N" or "auto".
        save_scores: also return per-image probabilities under "scores" (see `write_results`).
        workers: decoding processes for image files that are not held in memory.
        max_windows: dense windows per call of the fc layers (a memory bound).
        channels_last: put the models' conv weights in channels-last memory format (as the trainer
            does): on this project's CPU, 2x faster convolutions and max pooling; same results.
        flip: whether 10-view and dense testing add mirrored views. Default: as each model was
            trained (a checkpoint with data.flip = 0 never saw a mirror, so gets none); True or
            False overrides that for every model.

    Returns a dict with top1_err, top5_err (fractions), n_images, views, scales, stride, per_class_err
    (top-1, by class index), per_class_top5_err, confusion (true × predicted counts), per_scale and
    per_model errors, images_per_s, flip (per model), skipped (files that could not be decoded:
    never replaced, never counted); under torchrun every rank gets the same totals.
    """
    if views not in VIEWS:
        raise ValueError(f"unknown views {views!r}; choose one of {', '.join(VIEWS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    if not models:
        raise ValueError("evaluate needs at least one model or checkpoint")
    dev = distributed.resolve_device(str(device)) if not isinstance(device, torch.device) else device
    members = [_as_member(m, crop, normalize, dev) for m in models]
    if channels_last:
        for m in members:
            m.model.to(memory_format=torch.channels_last)
    if dataset is None:
        dataset = members[0].data_spec
        if dataset is None:
            raise ValueError("no data set given and the first model is not a checkpoint that names one")
    if isinstance(dataset, str):
        dataset = open_dataset(dataset, split)
    scales = _resolve_scales(scales, members)
    for member in members:
        _check_member(member, dataset)
        if views != "dense" and min(scales) < member.crop:
            raise ValueError(
                f"{member.name}: {views}-view testing crops {member.crop} px, so every scale must be >= "
                f"{member.crop}; got {list(scales)}"
            )
        if views == "dense":
            member.window = feature_window(member.model, member.crop, dataset.num_channels)

    rank, world = (
        (torch.distributed.get_rank(), torch.distributed.get_world_size())
        if torch.distributed.is_available() and torch.distributed.is_initialized()
        else (0, 1)
    )
    flips = [m.flip if flip is None else flip for m in members]
    plan = ViewPlan(views, scales, [(m.crop, f) for m, f in zip(members, flips, strict=True)])
    k = len(dataset.classes)
    counts = _Counts(len(members), len(scales), k)
    indices = torch.arange(rank, len(dataset), world)
    kept: list[tuple[Tensor, Tensor, Tensor]] = []  # (indices, ensemble scores, member scores)
    skipped: list[str] = []
    started = time.perf_counter()
    for batch in view_batches(dataset, indices, plan, batch_size, workers):
        skipped += batch.skipped
        if len(batch) == 0:
            continue
        per_member = []
        for m, f in zip(members, flips, strict=True):
            scores = member_scores(
                m,
                batch,
                plan,
                flip=f,
                stride=stride,
                max_windows=max_windows,
                batch_size=batch_size,
                device=dev,
            )
            if scores.shape[-1] != k:
                raise ValueError(
                    f"{m.name}: outputs {scores.shape[-1]} scores per image, {dataset.source} has {k} classes"
                )
            per_member.append(scores)  # (S, B, K)
        per_view = torch.stack(per_member)  # (M, S, B, K)
        ensemble = counts.add(per_view, batch.targets.to(dev))
        if save_scores:
            kept.append((batch.indices, ensemble.cpu(), per_view.mean(dim=1).cpu()))
    elapsed = time.perf_counter() - started
    counts.all_reduce(dev)
    # Files that failed to decode here, and those the data set dropped when it was opened.
    skipped = sorted(
        {*dataset.skipped, *(s for part in distributed.all_gather_objects(skipped) for s in part)}
    )

    results: dict[str, Any] = {
        "views": views,
        "scales": list(scales),
        "stride": stride if views == "dense" else None,
        "data": dataset.source,
        "models": [m.name for m in members],
        "flip": flips,
        **_summary(counts, dataset.classes),
        "skipped": skipped,
    }
    n = float(counts.values["n"][0])
    results["per_scale"] = [
        {"scale": s, **_errors(c, n)} for s, c in zip(scales, counts.values["scale_topk"], strict=True)
    ]
    results["per_model"] = [
        {
            "model": m.name,
            **_errors(c, n),
            "per_scale": [{"scale": s, **_errors(cs, n)} for s, cs in zip(scales, per_scale, strict=True)],
        }
        for m, c, per_scale in zip(
            members, counts.values["member_topk"], counts.values["member_scale_topk"], strict=True
        )
    ]
    results["world_size"] = world
    results["time_s"] = elapsed
    results["images_per_s"] = n / elapsed if elapsed > 0 else math.nan
    if save_scores:
        results["scores"] = _gather_scores(kept, dataset, members)
    return results


def _gather_scores(
    kept: list[tuple[Tensor, Tensor, Tensor]], dataset: ImageDataset, members: list[Member]
) -> dict[str, Any]:
    """Every rank's per-image scores, put back into data set order."""
    k, m = len(dataset.classes), len(members)
    local = (
        torch.cat([t[0] for t in kept]) if kept else torch.empty(0, dtype=torch.int64),
        torch.cat([t[1] for t in kept]) if kept else torch.empty(0, k),
        torch.cat([t[2] for t in kept], dim=1) if kept else torch.empty(m, 0, k),
    )
    parts = distributed.all_gather_objects(local)
    idx = torch.cat([p[0] for p in parts])
    order = idx.argsort()
    return {
        "indices": idx[order],
        "targets": dataset.targets[idx[order]],
        "scores": torch.cat([p[1] for p in parts])[order],
        "member_scores": torch.cat([p[2] for p in parts], dim=1)[:, order],
        "classes": list(dataset.classes),
        "models": [mb.name for mb in members],
    }


# ------------------------------------------------------------------------------------------ output


def write_results(results: dict[str, Any], out_dir: str | Path) -> Path:
    """Write `out_dir/results.json` (and `out_dir/scores.pt` when the results hold scores: tensors,
    lists and strings only, loadable with `torch.load(..., weights_only=True)`). Returns the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plain = {key: value for key, value in results.items() if key != "scores"}
    path = out / RESULTS_FILE
    path.write_text(json.dumps(plain, indent=1) + "\n")
    if "scores" in results:
        torch.save(results["scores"], out / SCORES_FILE)
    return path


def load_scores(path: str | Path) -> dict[str, Any]:
    """Scores saved by `write_results` (`eval --save-scores`), loaded safely."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scores file not found: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file gets the same clear message
        raise ValueError(f"{path}: not a readable scores file ({type(err).__name__})") from None
    if not isinstance(saved, dict) or not {"scores", "targets", "classes"} <= set(saved):
        raise ValueError(f"{path}: not a scores file of `rectifiers eval --save-scores`")
    return saved


def _pct(x: float) -> str:
    return "     n/a" if math.isnan(x) else f"{100 * x:7.2f}%"


def format_results(results: dict[str, Any], worst: int = 5) -> str:
    """A readable table: errors per scale and per model, the combined result, the worst classes."""
    views = {"single": "single-view", "ten": "10-view", "dense": "dense"}[results["views"]]
    head = f"{views} testing at scale(s) {', '.join(map(str, results['scales']))}"
    if results["views"] == "dense":
        head += f", window stride {results['stride']}"
    if results["views"] != "single" and not any(results.get("flip", [True])):
        head += ", no mirrored views"
    lines = [
        head,
        f"{results['n_images']:,} images of {results['data']}, {results['num_classes']} classes",
        "",
    ]
    rows: list[tuple[str, float, float]] = []
    multi_model = len(results["per_model"]) > 1
    if len(results["scales"]) > 1:
        label = "ensemble, scale {}" if multi_model else "scale {}"
        rows += [(label.format(r["scale"]), r["top1_err"], r["top5_err"]) for r in results["per_scale"]]
    if multi_model:
        rows += [(r["model"], r["top1_err"], r["top5_err"]) for r in results["per_model"]]
    final = "ensemble" if multi_model else ("multi-scale" if len(results["scales"]) > 1 else "result")
    rows.append((final, results["top1_err"], results["top5_err"]))
    width = max(len(r[0]) for r in rows)
    top5 = top5_is_informative(results["num_classes"])
    lines.append(f"{'':{width}}  top-1 err" + ("  top-5 err" if top5 else ""))
    lines += [f"{name:{width}}   {_pct(t1)}" + (f"   {_pct(t5)}" if top5 else "") for name, t1, t5 in rows]
    per_class = results["per_class_err"]
    seen = [i for i, n in enumerate(results["per_class_images"]) if n > 0]
    if len(seen) > 1:
        names = results["classes"]
        order = sorted(seen, key=lambda i: per_class[i], reverse=True)[:worst]
        lines += [
            "",
            "worst classes (top-1 err): " + ", ".join(f"{names[i]} {100 * per_class[i]:.1f}%" for i in order),
        ]
        if top5:
            zero5 = sum(1 for i in seen if results["per_class_top5_err"][i] == 0)
            lines.append(f"classes with zero top-5 error: {zero5} of {len(seen)}")
    skipped = results.get("skipped") or []
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        lines.append(f"{len(skipped)} file(s) skipped, not counted (could not be decoded): {shown}")
    lines.append(
        f"{results['images_per_s']:,.1f} images/s ({results['time_s']:.1f} s, "
        f"{results['world_size']} process(es))"
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ compare


def compare_methods(
    checkpoint: str | Path | Member,
    dataset: ImageDataset | str | None,
    methods: Sequence[tuple[str, Sequence[int]]],
    *,
    repeats: int = 1,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Evaluate one model with several (views, scales) methods, e.g.
    `[("ten", [36]), ("dense", [32]), ("dense", [32, 40, 48])]`: one row per method with its top-1 /
    top-5 error, images/s and seconds. The methods run `repeats` times in turn (interleaved, so a
    busy machine slows them alike) and a row keeps its fastest pass. Keyword arguments go to `evaluate`."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    member = (
        checkpoint if isinstance(checkpoint, Member) else load_member(checkpoint, kwargs.get("device", "cpu"))
    )
    split = kwargs.pop("split", "val")
    if isinstance(dataset, str) or dataset is None:
        dataset = open_dataset(dataset or member.data_spec or "", split)
    rows: list[dict[str, Any]] = [{} for _ in methods]
    for _ in range(repeats):
        for row, (views, scales) in zip(rows, methods, strict=True):
            r = evaluate([member], dataset, views=views, scales=list(scales), **kwargs)
            if row and row["time_s"] <= r["time_s"]:
                continue
            row.update(
                views=views,
                scales=list(scales),
                top1_err=r["top1_err"],
                top5_err=r["top5_err"],
                images_per_s=r["images_per_s"],
                time_s=r["time_s"],
                n_images=r["n_images"],
            )
    return rows


def format_comparison(rows: Sequence[dict[str, Any]]) -> str:
    """`compare_methods` rows as a markdown table."""
    names = {"single": "single-view", "ten": "10-view", "dense": "dense"}
    lines = [
        "| method | scales | top-1 err | top-5 err | images/s | time (s) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        method = names[r["views"]] + (" multi-scale" if len(r["scales"]) > 1 else "")
        lines.append(
            f"| {method} | {', '.join(map(str, r['scales']))} | {100 * r['top1_err']:.2f}% | "
            f"{100 * r['top5_err']:.2f}% | {r['images_per_s']:,.0f} | {r['time_s']:.1f} |"
        )
    return "\n".join(lines)
