"""Evaluate trained models: single-view, 10-view and dense multi-scale testing, ensembles, exact metrics.

`evaluate(checkpoints, dataset, EvalOptions(views=..., scales=...))` scores every image of a split
with a view function of `rectifiers.views`; a member's score is the mean softmax over scales, the
ensemble's the mean over members (each with its own crop and normalization). Top-1/top-5, per-class
(Sec. 4) and confusion counts are summed and all-reduced once, so under `torchrun` every image counts
exactly once. Mirrored views follow each model's training (`Member.flip`) unless `EvalOptions.flip`
says otherwise; an undecodable file is named in `results["skipped"]`, never replaced.

The paper leaves the dense stride and the scales open: the stride defaults to 1 (every window, as
OverFeat and VGG), the scales to the checkpoint's eval resize; Table 4 uses scales=(256, 384, 480).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.utils.data
from torch import Tensor, nn

from rectifiers import distributed
from rectifiers.checkpoint.inference import Member, as_member, borrowed
from rectifiers.data import ImageDataset, open_dataset
from rectifiers.eval_results import Counts, errors, summary
from rectifiers.transforms import Normalize
from rectifiers.view_batches import ViewBatch, ViewPlan, view_batches
from rectifiers.views import MAX_WINDOWS, VIEWS, feature_window, score_views


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
    member: Member, batch: ViewBatch, plan: ViewPlan, o: EvalOptions, device: torch.device | None = None
) -> Tensor:
    """(S, B, K) probabilities of one member (mirrored as `member.flip` says) at each of the plan's
    scales, with `o`'s stride and window bound. A forward pass holds about `o.batch_size` crops' worth
    of pixels (a tenth of the images for 10-view; for dense, the windows each image and its mirror
    amount to): larger passes spill the activations out of the CPU caches."""

    def score(x: Tensor) -> Tensor:
        return score_views(
            member.model,
            x.to(device) if device is not None else x,
            plan.views,
            normalize=member.normalize,
            window=member.window,
            stride=o.stride,
            flip=member.flip,
            max_windows=o.max_windows,
        )

    crop2 = member.crop * member.crop
    out = []
    for scale in plan.scales:
        prepared = batch.views[plan.key(member.crop, scale, member.flip)]
        if plan.views == "dense":
            parts, positions = [], []
            for where, images in prepared:  # type: ignore[misc]
                per_image = (1 + member.flip) * max(1.0, images[0, 0].numel() / crop2)
                parts.append(_in_chunks(score, images, 0, max(1, int(o.batch_size / per_image))))
                positions.append(where)
            scores = torch.cat(parts)[torch.cat(positions).argsort().to(parts[0].device)]
        else:
            assert isinstance(prepared, Tensor)
            dim, per_image = (1, prepared.shape[0]) if plan.views == "ten" else (0, 1)
            scores = _in_chunks(score, prepared, dim, max(1, o.batch_size // per_image))
        out.append(scores)
    return torch.stack(out)


def _in_chunks(score: Callable[[Tensor], Tensor], x: Tensor, dim: int, step: int) -> Tensor:
    """score(x) of slices of `step` images along `dim`, concatenated."""
    return torch.cat(
        [score(x.narrow(dim, lo, min(step, x.shape[dim] - lo))) for lo in range(0, x.shape[dim], step)]
    )


# --------------------------------------------------------------------------------------- evaluate


@dataclass(frozen=True)
class EvalOptions:
    """How `evaluate` scores a split; the defaults are `rectifiers eval`'s, but for the device."""

    split: str = "val"  # the split opened when `dataset` is a data spec or None
    views: str = "single"  # single (center crop) | ten (10 views) | dense (`rectifiers.views`)
    # shorter sides to test at (the resize before the crops, or dense's s), scores averaged over
    # them; empty: the first model's validation resize (else its crop)
    scales: tuple[int, ...] = ()
    # images read at a time and crops per forward pass (per process): 10-view and dense pass
    # proportionally fewer images at once
    batch_size: int = 64
    stride: int = 1  # dense windows' step on the conv map
    device: str | torch.device = "cpu"  # cpu | cuda | cuda:N | auto
    save_scores: bool = False  # also return per-image probabilities under "scores"
    workers: int = 0  # decoding processes for image files that are not held in memory
    max_windows: int = MAX_WINDOWS  # dense windows per call of the fc layers (a memory bound)
    channels_last: bool = True  # run the conv layers channels-last, as the trainer does; same results
    # mirrored views for ten and dense: None as each model was trained (a checkpoint with
    # data.flip = 0 never saw a mirror, so gets none), True or False for every model
    flip: bool | None = None
    crop: int | None = None  # a bare module's training crop side
    normalize: Normalize | None = None  # a bare module's input normalization

    def __post_init__(self) -> None:
        if self.views not in VIEWS:
            raise ValueError(f"unknown views {self.views!r}; choose one of {', '.join(VIEWS)}")
        for key in ("batch_size", "stride"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        scales = tuple(self.scales or ())
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in scales):
            raise ValueError(f"scales must be positive integers, got {list(scales)}")
        object.__setattr__(self, "scales", scales)


def evaluate(
    models: Sequence[str | Path | Member | nn.Module],
    dataset: ImageDataset | str | None = None,
    options: EvalOptions | None = None,
) -> dict[str, Any]:
    """Score `dataset` with one model or an ensemble and return the metrics as a dict.

    Args:
        models: checkpoint paths (each rebuilds its own model, crop and normalization), `Member`s, or
            bare modules (then `options.crop` and `options.normalize` say how they see images). All
            must output the data set's class count; a mismatch is a ValueError naming the model.
        dataset: an `ImageDataset`, a data spec (its `options.split` is opened), or None for the
            first checkpoint's training data.
        options: views, scales, batch size, device and the rest (`EvalOptions`).

    The given modules and `Member`s are left as they were: each is moved, put in eval mode and
    channels-last only for the length of the call.

    Returns a dict with top1_err, top5_err (fractions), n_images, views, scales, stride, per_class_err
    (top-1, by class index), per_class_top5_err, confusion (true × predicted counts), per_scale and
    per_model errors, images_per_s, flip (per model), skipped (files that could not be decoded:
    never replaced, never counted); under torchrun every rank gets the same totals.
    """
    o = options or EvalOptions()
    if not models:
        raise ValueError("evaluate needs at least one model or checkpoint")
    dev = o.device if isinstance(o.device, torch.device) else distributed.resolve_device(str(o.device))
    members = [as_member(m, crop=o.crop, normalize=o.normalize, device=dev) for m in models]
    fmt = torch.channels_last if o.channels_last else torch.preserve_format
    with contextlib.ExitStack() as lent:
        for member in members:
            lent.enter_context(borrowed(member.model, dev, fmt))
        if dataset is None:
            dataset = members[0].data_spec
            if dataset is None:
                raise ValueError("no data set given and the first model is not a checkpoint that names one")
        data = open_dataset(dataset, o.split) if isinstance(dataset, str) else dataset
        for member in members:
            _check_member(member, data)
        members, plan = viewing(members, o, data.num_channels)
        return _score_split(members, data, plan, o, dev)


def viewing(members: list[Member], o: EvalOptions, in_chans: int) -> tuple[list[Member], ViewPlan]:
    """The members as `o` has them view images (mirrored as each trained unless `o.flip` says, with
    the dense window on their conv maps) and the plan of those views at `o.scales` (default: the first
    member's eval resize, else its crop). Measures the windows on the models' devices."""
    scales = o.scales or (members[0].eval_resize or members[0].crop,)
    ready = []
    for m in members:
        if o.views != "dense" and min(scales) < m.crop:
            raise ValueError(
                f"{m.name}: {o.views}-view testing crops {m.crop} px, so every scale must be >= {m.crop}; "
                f"got {list(scales)}"
            )
        window = feature_window(m.model, m.crop, in_chans) if o.views == "dense" else m.window
        ready.append(dataclasses.replace(m, flip=m.flip if o.flip is None else o.flip, window=window))
    return ready, ViewPlan(o.views, scales, [(m.crop, m.flip) for m in ready])


def _score_split(
    members: list[Member], dataset: ImageDataset, plan: ViewPlan, o: EvalOptions, dev: torch.device
) -> dict[str, Any]:
    """Every image of `dataset` (this rank's share) through every member, counted and all-reduced."""
    rank, world = (
        (torch.distributed.get_rank(), torch.distributed.get_world_size())
        if torch.distributed.is_available() and torch.distributed.is_initialized()
        else (0, 1)
    )
    scales = plan.scales
    k = len(dataset.classes)
    counts = Counts(len(members), len(scales), k)
    indices = torch.arange(rank, len(dataset), world)
    kept: list[tuple[Tensor, Tensor, Tensor]] = []  # (indices, ensemble scores, member scores)
    skipped: list[str] = []
    started = time.perf_counter()
    for batch in view_batches(dataset, indices, plan, o.batch_size, o.workers):
        skipped += batch.skipped
        if len(batch) == 0:
            continue
        per_member = []
        for m in members:
            scores = member_scores(m, batch, plan, o, dev)
            if scores.shape[-1] != k:
                raise ValueError(
                    f"{m.name}: outputs {scores.shape[-1]} scores per image, {dataset.source} has {k} classes"
                )
            per_member.append(scores)  # (S, B, K)
        per_view = torch.stack(per_member)  # (M, S, B, K)
        ensemble = counts.add(per_view, batch.targets.to(dev))
        if o.save_scores:
            kept.append((batch.indices, ensemble.cpu(), per_view.mean(dim=1).cpu()))
    elapsed = time.perf_counter() - started
    counts.all_reduce(dev)
    # Files that failed to decode here, and those the data set dropped when it was opened.
    skipped = sorted(
        {*dataset.skipped, *(s for part in distributed.all_gather_objects(skipped) for s in part)}
    )

    v, n = counts.values, float(counts.values["n"][0])

    def per_scale(correct: Tensor) -> list[dict[str, Any]]:
        return [{"scale": s, **errors(c, n)} for s, c in zip(scales, correct, strict=True)]

    results: dict[str, Any] = {
        "views": o.views,
        "scales": list(scales),
        "stride": o.stride if o.views == "dense" else None,
        "data": dataset.source,
        "models": [m.name for m in members],
        "flip": [m.flip for m in members],
        **summary(counts, dataset.classes),
        "skipped": skipped,
        "per_scale": per_scale(v["scale_topk"]),
        "per_model": [
            {"model": m.name, **errors(c, n), "per_scale": per_scale(cs)}
            for m, c, cs in zip(members, v["member_topk"], v["member_scale_topk"], strict=True)
        ],
        "world_size": world,
        "time_s": elapsed,
        "images_per_s": n / elapsed if elapsed > 0 else math.nan,
    }
    if o.save_scores:
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
