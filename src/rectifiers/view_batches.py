"""Evaluation views of images of any size, batched: the pixel work per image in the loader's workers.

A `ViewPlan` names the distinct prepared tensors an evaluation needs, keyed by (crop, scale, flip),
and makes them per image in DataLoader workers, collated there so that mixed-size images still reach
the model in full batches. Dense testing keeps whole resized images, so its batches are grouped by
resized shape. An undecodable file is named in the batch's `skipped`, never replaced.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils.data
from torch import Tensor

from rectifiers.data import FileDataset, ImageDataset, InMemoryDataset, pil_to_tensor
from rectifiers.decode import BadImageError
from rectifiers.views import prepare_views

ViewKey = tuple[int, int, bool]  # (crop, scale, flip) of one prepared tensor
Groups = list[tuple[Tensor, Tensor]]  # dense: (positions in the batch, same-size resized images)


@dataclass
class ViewBatch:
    """Prepared views of a batch's images, their labels and data set indices, and the files of the
    batch that could not be decoded."""

    views: dict[ViewKey, Tensor | Groups]
    targets: Tensor
    indices: Tensor
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.targets)


# One image from a worker: its views (None when it could not be decoded), label, index, and the
# file's name when it was skipped.
_Item = tuple[dict[ViewKey, Tensor] | None, int, int, str | None]


class ViewPlan:
    """The views an evaluation takes of every image: `views` ("single", "ten", "dense") at each of
    `scales`, for each (crop, flip) of the models. Holds no model, so it pickles into workers."""

    def __init__(
        self, views: str, scales: Sequence[int], crops_and_flips: Sequence[tuple[int, bool]]
    ) -> None:
        self.views = views  # checked where a view is made (`prepare_views`)
        self.scales = tuple(int(s) for s in scales)
        self.keys = sorted({self.key(c, s, f) for c, f in crops_and_flips for s in self.scales})

    def key(self, crop: int, scale: int, flip: bool) -> ViewKey:
        """The prepared tensor a model with this crop and mirroring scores at `scale`: single views
        never mirror, and dense testing cuts its windows later, so its image does not depend on the
        crop (the mirror is taken at scoring time)."""
        if self.views == "single":
            flip = False
        if self.views == "dense":
            crop, flip = 0, False
        return (int(crop), int(scale), bool(flip))

    @property
    def min_short(self) -> int:
        """The shorter side an image may be decoded down to (JPEG draft mode) and still be exact."""
        return max(self.scales)

    def prepare(self, images: Tensor) -> dict[ViewKey, Tensor]:
        """Every prepared tensor of a same-size uint8 batch (B, C, H, W)."""
        return {k: prepare_views(images, self.views, scale=k[1], crop=k[0], flip=k[2]) for k in self.keys}

    def collate(self, items: list[_Item]) -> ViewBatch:
        """Batch the images of one loader batch (in its worker): views stacked, broken files named."""
        good = [it for it in items if it[0] is not None]
        skipped = [it[3] for it in items if it[0] is None and it[3] is not None]
        views: dict[ViewKey, Tensor | Groups] = {}
        for k in self.keys:
            parts = [it[0][k] for it in good]  # type: ignore[index]
            if self.views == "dense":
                views[k] = _groups_by_shape(parts)
            elif parts:
                views[k] = torch.cat(parts, dim=1 if self.views == "ten" else 0)
        targets = torch.tensor([it[1] for it in good], dtype=torch.int64)
        indices = torch.tensor([it[2] for it in good], dtype=torch.int64)
        return ViewBatch(views, targets, indices, skipped)


def _groups_by_shape(parts: list[Tensor]) -> Groups:
    """Resized images (1, C, H, W) of a batch, grouped by size: (positions, stacked images)."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for pos, x in enumerate(parts):
        by_shape.setdefault(tuple(x.shape), []).append(pos)
    return [
        (torch.tensor(pos, dtype=torch.int64), torch.cat([parts[p] for p in pos]))
        for pos in by_shape.values()
    ]


class _FileViews(torch.utils.data.Dataset):
    """Worker side: decode one image of a file set (never a substitute) and prepare its views."""

    def __init__(self, dataset: FileDataset, indices: list[int], plan: ViewPlan) -> None:
        self.dataset, self.indices, self.plan = dataset, indices, plan

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> _Item:
        i = self.indices[j]
        try:
            im, label = self.dataset.load(i, min_short=self.plan.min_short, substitute=False)
        except BadImageError as err:
            warnings.warn(f"{err}; skipped, not counted", stacklevel=2)
            return None, int(self.dataset.targets[i]), i, self.dataset.store.describe(self.dataset.names[i])
        return self.plan.prepare(pil_to_tensor(im)[None]), label, i, None


def view_batches(
    dataset: ImageDataset, indices: Tensor, plan: ViewPlan, batch_size: int, workers: int
) -> Iterator[ViewBatch]:
    """The `ViewBatch`es of `dataset[indices]`, `batch_size` images each (fewer where files were
    skipped); file sets are decoded and viewed by `workers` processes (0: in this one)."""
    if isinstance(dataset, InMemoryDataset):
        for lo in range(0, len(indices), batch_size):
            idx = indices[lo : lo + batch_size]
            prepared = plan.prepare(dataset.images[idx])
            views: dict[ViewKey, Tensor | Groups] = dict(prepared)
            if plan.views == "dense":  # a same-size batch is one group
                views = {k: [(torch.arange(len(idx)), v)] for k, v in prepared.items()}
            yield ViewBatch(views, dataset.targets[idx], idx)
        return
    if not isinstance(dataset, FileDataset):
        raise ValueError(f"unsupported data set type {type(dataset).__name__}")
    loader: Any = torch.utils.data.DataLoader(
        _FileViews(dataset, indices.tolist(), plan),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=plan.collate,
    )
    yield from loader


def image_views(images: Sequence[Tensor], plan: ViewPlan, indices: Sequence[int]) -> ViewBatch:
    """A `ViewBatch` of decoded uint8 images (C, H, W) of any sizes (`rectifiers.predict`)."""
    items: list[_Item] = [(plan.prepare(x[None]), 0, i, None) for x, i in zip(images, indices, strict=True)]
    return plan.collate(items)
