"""A validation split held out of the training set, so that the test split is looked at only once.

A data set's own `val` split is often its test set (`idx:` reads `t10k`); picking the lr switches and
`best.pt` on it makes the reported error optimistic. `hold_out` carves a seeded, class-balanced share
of the training images into a validation split; the trainer evaluates the own split once, at the end.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rectifiers.data import FileDataset, ImageDataset, InMemoryDataset
from rectifiers.decode import open_store
from rectifiers.layouts import split_folder

HOLDOUT_SEED = 0  # one held-out split per data set and fraction, the same for every train.seed


def hold_out(
    train_set: ImageDataset, fraction: float, seed: int = HOLDOUT_SEED
) -> tuple[ImageDataset, ImageDataset]:
    """(train, val): `fraction` of every class of `train_set` (rounded, at least one image, at least one
    left to train on), picked by a permutation seeded with `seed`; the rest stays for training."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1) to hold out a split, got {fraction}")
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))
    held: list[torch.Tensor] = []
    for c in range(len(train_set.classes)):
        members = order[train_set.targets[order] == c]
        if len(members) < 2:
            continue  # a class with one image keeps it for training
        k = min(max(round(fraction * len(members)), 1), len(members) - 1)
        held.append(members[:k])
    val_idx = torch.cat(held).sort().values if held else torch.empty(0, dtype=torch.int64)
    keep = torch.ones(len(train_set), dtype=torch.bool)
    keep[val_idx] = False
    return take(train_set, keep.nonzero().flatten()), take(train_set, val_idx)


def take(dataset: ImageDataset, indices: torch.Tensor) -> ImageDataset:
    """The images of `dataset` at `indices`, as a data set of the same kind."""
    targets = dataset.targets[indices]
    if isinstance(dataset, InMemoryDataset):
        return InMemoryDataset(
            dataset.images[indices], targets, dataset.classes, dataset.source, dataset.skipped
        )
    if isinstance(dataset, FileDataset):
        names = [dataset.names[i] for i in indices.tolist()]
        return FileDataset(
            dataset.store,
            names,
            targets,
            dataset.classes,
            dataset.num_channels,
            dataset.source,
            dataset.skipped,
            dataset.max_pixels,
        )
    raise TypeError(f"cannot hold out a split of a {type(dataset).__name__}")


def val_is_test_split(spec: str) -> bool:
    """Whether the `val` split of `spec` is the data set's test set: `idx:` (its `t10k` files) and a
    `folder:` without a `val/` folder (which falls back to `test/`)."""
    kind, _, arg = spec.partition(":")
    if kind == "idx":
        return True
    if kind != "folder" or not arg:
        return False
    found = split_folder(open_store(Path(arg).expanduser()).listing()[1], "val")
    return found is not None and found[1] == "test"
