"""What an evaluation counts and writes: top-1/top-5 and per-class counts summed for one all-reduce,
the metrics dict made of them, `results.json` / `scores.pt`, and the printed table.

`metrics_from_scores` turns saved (N, K) scores, e.g. of several runs averaged afterwards, into the
same metrics as `rectifiers.evaluate.evaluate` returns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rectifiers import distributed
from rectifiers.metrics import error_from_counts, per_class_counts, top5_is_informative, topk_correct

SCORES_FILE = "scores.pt"
RESULTS_FILE = "results.json"


class Counts:
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
        hits5 = ensemble.topk(min(5, k), dim=1).indices.eq(targets[:, None]).any(dim=1).double()  # per image
        v["class_top5"] += torch.bincount(targets, weights=hits5, minlength=k).cpu()
        return ensemble

    def all_reduce(self, device: torch.device) -> None:
        flat = torch.cat([t.flatten() for t in self.values.values()]).to(device)
        flat = distributed.all_reduce_sum(flat).cpu()
        for key, t in zip(self.values, flat.split([t.numel() for t in self.values.values()]), strict=True):
            self.values[key] = t.view(self.shapes[key])


def errors(correct: Tensor, n: float) -> dict[str, float]:
    return {
        "top1_err": error_from_counts(float(correct[0]), n),
        "top5_err": error_from_counts(float(correct[1]), n),
    }


def summary(counts: Counts, classes: Sequence[str]) -> dict[str, Any]:
    v = counts.values
    n = float(v["n"][0])
    confusion = v["confusion"].round().to(torch.int64)
    per_class = confusion.sum(dim=1).double()
    diag = confusion.diagonal().double()
    return {
        **errors(v["topk"], n),
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
    counts = Counts(1, 1, len(names))
    counts.add(scores[None, None].float(), targets.to(torch.int64))
    return summary(counts, names)


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
