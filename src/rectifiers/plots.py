"""Figures drawn from files a run already wrote; nothing here trains or evaluates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a torn last line (a crash mid-write) is ignored."""
    records = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def plot_curves(metrics_path: str | Path, out_path: str | Path, title: str | None = None) -> Path:
    """`curves.png`: loss and top-1/top-5 error against epoch, train and validation."""
    # The object-oriented Figure API draws with Agg without touching pyplot's global backend: a
    # notebook that trains keeps its own.
    from matplotlib.figure import Figure

    records = read_jsonl(metrics_path)

    def series(key: str, scale: float = 1.0) -> tuple[list[Any], list[float]]:
        # Only the epochs that have the key: lines written by other versions may lack some.
        have = [r for r in records if r.get(key) is not None]
        return [r["epoch"] for r in have], [scale * r[key] for r in have]

    fig = Figure(figsize=(10, 4))
    ax_loss, ax_err = fig.subplots(1, 2)
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        ax_loss.plot(*series(key), marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    for key, label in (
        ("train_top1_err", "train top-1"),
        ("val_top1_err", "val top-1"),
        ("val_top5_err", "val top-5"),
    ):
        ax_err.plot(*series(key, 100.0), marker="o", label=label)
    ax_err.set(xlabel="epoch", ylabel="error (%)", title="error")
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=110)
    return out_path
