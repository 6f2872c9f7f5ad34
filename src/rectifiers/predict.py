"""Predict the classes of image files with a trained model: top-k class names and probabilities.

    predict("runs/default/best.pt", ["digit.png", "photos/"], top=5, views="single")

Each path is an image file or a folder (searched recursively for image files, sorted by name).
Images are decoded safely (`rectifiers.decode`), converted to the model's channel count, and scored
through the same views, scales, mirroring and normalization as `rectifiers.evaluate`. The result is
one dict per image, in input order:

    {"path": "digit.png", "predictions": [{"rank": 1, "class": "7", "index": 7, "probability": 0.98},
     ...], "error": None}

A file that cannot be read or decoded gets `"predictions": []` and `"error"` saying why; the others
are still predicted. `write_csv` / `write_json` save the records.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rectifiers import decode, distributed
from rectifiers.checkpoint.inference import Member, as_member, borrowed
from rectifiers.data import pil_to_tensor
from rectifiers.evaluate import EvalOptions, member_scores, viewing
from rectifiers.transforms import Normalize
from rectifiers.view_batches import ViewPlan, image_views

CSV_FIELDS = ("path", "rank", "class", "index", "probability", "error")


def image_paths(paths: Iterable[str | Path]) -> list[tuple[str, str | None]]:
    """Expand the inputs into (file, None) for each image to predict, or (path, reason) for an input
    that yields none: a missing path or a folder without image files."""
    out: list[tuple[str, str | None]] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and decode.is_image_name(p.name))
            if not files:
                out.append(
                    (str(path), f"no image files in this folder ({', '.join(decode.IMAGE_EXTENSIONS)})")
                )
            out.extend((str(p), None) for p in files)
        elif path.exists():
            out.append((str(path), None))  # named explicitly: tried whatever its extension
        else:
            out.append((str(path), "no such file or directory"))
    return out


def _in_chans(model: nn.Module) -> int:
    """The channel count the model takes: its build arguments, else its first conv layer's."""
    chans = getattr(model, "build_args", {}).get("in_chans")
    if chans is None:
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        chans = conv.in_channels if conv is not None else 3
    if chans not in (1, 3):
        raise ValueError(f"image files decode to 1 or 3 channels; the model takes {chans}")
    return int(chans)


def predict(
    model_or_checkpoint: str | Path | Member | nn.Module,
    paths: Iterable[str | Path],
    top: int = 5,
    views: str = "single",
    *,
    scales: Sequence[int] | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    crop: int | None = None,
    resize: int | None = None,
    normalize: Normalize | None = None,
    classes: Sequence[str] | None = None,
    flip: bool | None = None,
) -> list[dict[str, Any]]:
    """Top-`top` classes of every image in `paths` (files or folders), as records (module docstring).

    Args:
        model_or_checkpoint: a checkpoint path (its model, crop, eval resize, normalization and class
            names), a `Member` (`rectifiers.checkpoint.inference`), or a bare module (then `crop=`,
            and `normalize=` for the inputs it was trained on; class names from `classes=` or its
            `classes` attribute). A given module or Member is left as it was.
        top: how many classes per image (at most the class count).
        views: "single", "ten" or "dense" (`rectifiers.views`).
        scales: shorter sides to view each image at (default: the eval resize, else the crop).
        batch_size: images decoded and scored together (their views share a forward pass).
        device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when there is one); a given module is moved
            there for the call only.
        flip: whether 10-view and dense add mirrored views (default: as the checkpoint trained,
            `Member.flip`).
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")
    options = EvalOptions(views=views, scales=tuple(scales or ()), batch_size=batch_size, flip=flip)
    dev = device if isinstance(device, torch.device) else distributed.resolve_device(str(device))
    member = as_member(model_or_checkpoint, crop=crop, normalize=normalize, device=dev)
    if classes is not None:
        member.classes = [str(c) for c in classes]
    if resize is not None:
        member.eval_resize = resize
    with borrowed(member.model, dev):
        (member,), plan = viewing([member], options, _in_chans(member.model))
        return _predict_files(member, image_paths(paths), plan, top, options)


def _predict_files(
    member: Member,
    items: list[tuple[str, str | None]],
    plan: ViewPlan,
    top: int,
    options: EvalOptions,
) -> list[dict[str, Any]]:
    """The records of `items` (from `image_paths`), decoded and scored `options.batch_size` at a time."""
    records: list[dict[str, Any]] = [{"path": p, "predictions": [], "error": err} for p, err in items]
    todo = [i for i, (_, err) in enumerate(items) if err is None]
    mode = "L" if _in_chans(member.model) == 1 else "RGB"
    device = next(member.model.parameters()).device
    for lo in range(0, len(todo), options.batch_size):
        decoded: list[Tensor] = []
        index: list[int] = []
        for i in todo[lo : lo + options.batch_size]:
            try:
                # Given the path, not a handle, Pillow names the file in its errors and closes it.
                decoded.append(
                    pil_to_tensor(decode.decode_image(items[i][0], mode, min_short=plan.min_short))
                )
            except decode.BadImageError as err:
                records[i]["error"] = str(err)
                continue
            index.append(i)
        if not index:
            continue
        batch = image_views(decoded, plan, index)
        scores = member_scores(member, batch, plan, options, device)
        for i, p in zip(index, scores.mean(dim=0).cpu(), strict=True):
            records[i]["predictions"] = _top(p, top, member.classes)
    return records


def _top(probs: Tensor, k: int, classes: Sequence[str] | None) -> list[dict[str, Any]]:
    values, indices = probs.topk(min(k, probs.numel()))
    return [
        {
            "rank": rank,
            "class": classes[j] if classes is not None and j < len(classes) else str(j),
            "index": j,
            "probability": float(v),
        }
        for rank, (v, j) in enumerate(zip(values.tolist(), indices.tolist(), strict=True), start=1)
    ]


# ------------------------------------------------------------------------------------------ output


def format_records(records: Sequence[dict[str, Any]]) -> str:
    """A readable listing: per image its path, then one line per class (rank, name, probability)."""
    width = max((len(p["class"]) for r in records for p in r["predictions"]), default=0)
    lines: list[str] = []
    for r in records:
        if r["error"] is not None:
            continue
        lines.append(r["path"])
        for p in r["predictions"]:
            lines.append(f"  {p['rank']:>2}. {p['class']:<{width}}  {100 * p['probability']:6.2f}%")
    return "\n".join(lines)


def write_csv(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One row per (image, rank): path, rank, class, index, probability, error; an image that
    could not be predicted gets one row with only its path and the error."""
    path = Path(path)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in records:
            if r["error"] is not None:
                writer.writerow({"path": r["path"], "error": r["error"]})
            for p in r["predictions"]:
                writer.writerow({"path": r["path"], "error": "", **p})
    return path


def write_json(records: Sequence[dict[str, Any]], path: str | Path, **info: Any) -> Path:
    """`{**info, "results": records}` as indented JSON (info: e.g. the checkpoint and the views)."""
    path = Path(path)
    path.write_text(json.dumps({**info, "results": list(records)}, indent=2) + "\n")
    return path
