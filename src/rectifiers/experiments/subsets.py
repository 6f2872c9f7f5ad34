"""Class-balanced subsets of a data set, written once as an image folder that every data reader
of the library opens like any other data set."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import torch

from rectifiers import runtime
from rectifiers.atomic_file import replacing


def subset(spec: str, n_train: int | None, n_val: int | None, seed: int = 0) -> tuple[str, dict[str, int]]:
    """A class-balanced subset of `spec`: at most `n_train` / `n_val` images (None: all), the same
    number from every class, picked by a seeded permutation.

    Returns (spec, sizes). When both splits already fit, `spec` itself; otherwise the subset is
    written once as PNG files in the ImageNet folder layout (`train/<class>/`, `val/<class>/`) under
    `runtime.cache_root()/subsets/` and `folder:<that directory>` is returned, so that
    `rectifiers.engine.fit` and `rectifiers.evaluate` read it like any data set. A 1-channel source
    becomes 3-channel (grayscale replicated), as every image folder does.
    """
    from rectifiers.data import open_dataset

    splits = {"train": open_dataset(spec, "train"), "val": open_dataset(spec, "val")}
    caps = {"train": n_train, "val": n_val}
    picks: dict[str, torch.Tensor] = {}
    for split, ds in splits.items():
        cap, k = caps[split], len(ds.classes)
        if cap is not None and cap < k:
            raise ValueError(f"a subset needs at least one image per class: {split} cap {cap} < {k} classes")
        if cap is None or cap >= len(ds):
            picks[split] = torch.arange(len(ds))
            continue
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
        per_class = cap // k
        chosen = [order[ds.targets[order] == c][:per_class] for c in range(k)]
        picks[split] = torch.cat(chosen).sort().values
    sizes = {split: len(idx) for split, idx in picks.items()}
    if all(sizes[s] == len(splits[s]) for s in splits):
        return spec, sizes
    key = hashlib.sha1(f"{spec}|{n_train}|{n_val}|{seed}".encode()).hexdigest()[:16]
    root = runtime.cache_root() / "subsets" / key
    if not (root / "done").is_file():
        _write_folder(splits, picks, root)
    return f"folder:{root}", sizes


def _write_folder(splits: dict[str, Any], picks: dict[str, torch.Tensor], root: Path) -> None:
    """Write the picked images under a temporary name, then rename: a crash leaves no half folder."""
    from PIL import Image

    root.parent.mkdir(parents=True, exist_ok=True)
    with replacing(root) as tmp:
        for split, ds in splits.items():
            width = len(str(len(ds)))
            for i in picks[split].tolist():
                image, label = ds[i]
                folder = tmp / split / ds.classes[label]
                folder.mkdir(parents=True, exist_ok=True)
                array = image.permute(1, 2, 0).numpy()
                pil = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
                pil.save(folder / f"{i:0{width}d}.png")
        (tmp / "done").write_text("complete\n")
        if root.exists():  # an unfinished earlier attempt
            shutil.rmtree(root)


def describe_data(data: str, spec: str, sizes: dict[str, int]) -> str:
    """The setup's data sentence: the spec asked for and, where `subset` cut it, the subset's sizes.
    The spec's own val split (a folder's test/ where it has no val/) is what the experiments test on:
    they hold their validation images out of train."""
    counts = f"{sizes['train']:,} train / {sizes['val']:,} test images"
    if spec != data:
        return f"Data: `{data}`, class-balanced subset: {counts}"
    return f"Data: `{data}` ({counts})"
