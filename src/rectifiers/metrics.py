"""Classification metrics that add up exactly across batches and processes.

Everything is kept as sums (never as running means) so that per-batch and per-rank partial results
combine exactly with one all-reduce: no image is counted twice and none is lost.
"""

from __future__ import annotations

import torch


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> torch.Tensor:
    """Number of samples whose target is among the top-k scores, for each k (float64 tensor).

    k larger than the class count counts every sample as correct (top-5 of a 3-class problem).
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"expected logits (N, C) and targets (N,), got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # (N, kmax)
    hits = top.eq(targets[:, None])
    return torch.stack([hits[:, : min(k, kmax)].any(dim=1).sum() for k in ks]).to(torch.float64)


def per_class_counts(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion counts (true class, predicted class) as an int64 (C, C) tensor."""
    predicted = logits.argmax(dim=1)
    flat = targets.to(torch.int64) * num_classes + predicted.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def error_from_counts(correct: float, total: float) -> float:
    """1 - correct/total as a plain float (nan for an empty split)."""
    return float("nan") if total == 0 else 1.0 - correct / total


def top5_is_informative(num_classes: int) -> bool:
    """Whether a top-5 error is worth showing: with 5 classes or fewer every image is in its top 5."""
    return num_classes > 5
