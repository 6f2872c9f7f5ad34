"""Batches for training and evaluation: shuffling, sharding over ranks, batched augmentation.

`BatchLoader(dataset, batch_size, train=..., transform=...)` yields
(x float32 (B, C, crop, crop), y int64 (B,)); `batch_size` is per rank.

Training: one permutation per epoch from (seed, epoch), of which rank r takes positions r, r + W, ...
(the N mod W remainder dropped); the augmentation parameters are a per-epoch table indexed by
position. So a sample's crop, flip and colour depend on neither rank, world size nor batch size:
`set_epoch(e, start_batch=k)` resumes an epoch exactly, and W ranks see what one rank sees with a
W-times larger batch. Evaluation: no shuffling, rank r takes samples r, r + W, ..., every image once.

In-memory sets are transformed a whole batch at a time in the main process (on `device` when given).
File sets are decoded, resized and cropped per image in DataLoader workers; colour and normalization
then run batched. An undecodable file is replaced by the next image in training and left out of an
evaluation batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np
import torch
import torch.utils.data

from rectifiers.data import FileDataset, ImageDataset, InMemoryDataset
from rectifiers.decode import BadImageError
from rectifiers.transforms import EvalTransform, TrainTransform

_PERMUTATION, _AUGMENTATION, _CALLABLE = 0, 1, 2  # independent random streams of an epoch


def epoch_generator(seed: int, epoch: int, stream: int, rank: int = 0) -> torch.Generator:
    """A CPU generator for one (seed, epoch, stream[, rank]), well mixed by numpy's SeedSequence."""
    state = np.random.SeedSequence([seed, epoch, stream, rank]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


@dataclass(eq=False)
class BatchLoader:
    """Iterates (x float32 (B, C, crop, crop), y int64 (B,)) batches of one rank's share of an epoch.

    transform: a `TrainTransform` (train) or `EvalTransform` (eval); for in-memory sets any callable,
    called as `transform(x, generator)` in training (seeded by seed, epoch and rank) and `transform(x)`
    in evaluation.
    """

    dataset: ImageDataset
    batch_size: int  # per rank
    _: KW_ONLY
    train: bool
    transform: Callable[..., torch.Tensor]
    rank: int = 0
    world_size: int = 1
    seed: int = 0
    num_workers: int = 0  # DataLoader workers decoding a file set
    drop_last: bool | None = None  # None: True for training
    device: torch.device | str | None = None  # where batches are made (in-memory images go there once)
    channels_last: bool = False

    def __post_init__(self) -> None:
        dataset, batch_size, rank, world_size = self.dataset, self.batch_size, self.rank, self.world_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        n = len(dataset)
        if n == 0:
            raise ValueError(f"{dataset.source}: the data set is empty")
        self.drop_last = self.train if self.drop_last is None else self.drop_last
        self.device = torch.device(self.device) if self.device is not None else None
        self.num_samples = n // world_size if self.train else len(range(rank, n, world_size))
        if len(self) == 0:
            raise ValueError(
                f"{dataset.source}: {self.num_samples} samples per rank make no full batch of {batch_size} "
                f"(N={n}, world_size={world_size}); lower the batch size or set drop_last=False"
            )
        self._files: torch.utils.data.DataLoader | None = None  # the worker pipeline of a file set
        if isinstance(dataset, FileDataset):
            needed = TrainTransform if self.train else EvalTransform
            if not isinstance(self.transform, needed):
                raise ValueError(
                    f"a file data set needs a {needed.__name__} (its per-image part runs in the loader's "
                    f"workers), got {type(self.transform).__name__}"
                )
            self._sampler = _BatchList()
            self._files = torch.utils.data.DataLoader(
                _FileItems(dataset, self.transform),
                batch_sampler=self._sampler,
                collate_fn=_stack_decoded,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
                pin_memory=self.device is not None and self.device.type == "cuda",
            )
        elif not isinstance(dataset, InMemoryDataset):
            raise ValueError(f"unsupported data set type {type(dataset).__name__}")
        self._images: torch.Tensor | None = None  # in-memory images on `device`
        self._epoch = 0
        self._start = 0

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch (its shuffle and augmentation) and the batch to start from: iteration then
        yields batches start_batch..len-1 of exactly that epoch (with a `TrainTransform`; a plain
        callable's generator restarts at the epoch's seed)."""
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch must lie in [0, {len(self)}], got {start_batch}")
        self._epoch = int(epoch)
        self._start = int(start_batch)

    def epoch_plan(self) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """This rank's sample indices in order, and their augmentation parameters (None in eval or
        for a plain callable transform)."""
        n, w = len(self.dataset), self.world_size
        if not self.train:
            return torch.arange(self.rank, n, w), None
        perm = torch.randperm(n, generator=epoch_generator(self.seed, self._epoch, _PERMUTATION))
        positions = torch.arange(self.rank, (n // w) * w, w)
        params = None
        if isinstance(self.transform, TrainTransform):
            # A table for all N positions (not N // W * W), so it is the same for every world size.
            table = self.transform.sample_params(n, epoch_generator(self.seed, self._epoch, _AUGMENTATION))
            params = {k: v[positions] for k, v in table.items()}
        return perm[positions], params

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        indices, params = self.epoch_plan()
        b = self.batch_size
        spans = [(k * b, min((k + 1) * b, self.num_samples)) for k in range(self._start, len(self))]
        batches = (
            self._iter_files(indices, params, spans)
            if self._files is not None
            else self._iter_memory(indices, params, spans)
        )
        for x, y in batches:
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y

    def _iter_memory(
        self, indices: torch.Tensor, params: dict[str, torch.Tensor] | None, spans: list[tuple[int, int]]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        assert isinstance(self.dataset, InMemoryDataset)
        images, targets = self.dataset.images, self.dataset.targets
        if self.device is not None and self.device != images.device:
            if self._images is None:
                self._images = images.to(self.device)
            images = self._images
        generator = None
        if self.train and params is None:
            generator = epoch_generator(self.seed, self._epoch, _CALLABLE, self.rank)
        for lo, hi in spans:
            idx = indices[lo:hi]
            x = images[idx.to(images.device)]
            if params is not None:
                assert isinstance(self.transform, TrainTransform)
                x = self.transform.apply(x, {k: v[lo:hi] for k, v in params.items()})
            elif self.train:
                x = self.transform(x, generator)
            else:
                x = self.transform(x)
            yield x, self._to_device(targets[idx])

    def _iter_files(
        self, indices: torch.Tensor, params: dict[str, torch.Tensor] | None, spans: list[tuple[int, int]]
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        assert self._files is not None
        self._sampler.plan = (indices, params, spans)
        for (lo, hi), (x, y) in zip(spans, self._files, strict=True):
            if len(y) == 0:
                continue  # every file of this evaluation batch failed to decode
            x = self._to_device(x)
            if isinstance(self.transform, TrainTransform):
                assert params is not None
                x = self.transform.finish(x, {"alpha": params["alpha"][lo:hi]})
            else:
                assert isinstance(self.transform, EvalTransform)
                x = self.transform.finish(x)
            yield x, self._to_device(y)

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.device is None else t.to(self.device, non_blocking=True)


class _BatchList(torch.utils.data.Sampler):
    """Batch sampler of the file path: each batch's (index, augmentation row) pairs from the plan the
    BatchLoader sets before each epoch; it runs in the main process, so persistent workers follow it."""

    plan: tuple[torch.Tensor, dict[str, torch.Tensor] | None, list[tuple[int, int]]] = (
        torch.empty(0),
        None,
        [],
    )

    def __iter__(self) -> Iterator[list[tuple[int, dict[str, Any] | None]]]:
        indices, params, spans = self.plan
        for lo, hi in spans:
            idx = indices[lo:hi].tolist()
            if params is None:
                yield [(i, None) for i in idx]
                continue
            rows = {k: params[k][lo:hi].tolist() for k in ("scale", "offset", "flip")}
            yield [(i, {k: v[j] for k, v in rows.items()}) for j, i in enumerate(idx)]

    def __len__(self) -> int:
        return len(self.plan[2])


class _FileItems(torch.utils.data.Dataset):
    """Worker side of a file data set: decode one image and resize/crop it to the fixed size; in
    evaluation an undecodable file gives None (dropped), in training the next image."""

    def __init__(self, dataset: FileDataset, transform: TrainTransform | EvalTransform) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, dict[str, Any] | None]) -> tuple[torch.Tensor | None, int]:
        i, row = item
        if row is None:
            assert isinstance(self.transform, EvalTransform)
            try:
                im, label = self.dataset.load(i, min_short=self.transform.resize, substitute=False)
            except BadImageError as err:
                warnings.warn(f"{err}; not counted in validation", stacklevel=2)
                return None, int(self.dataset.targets[i])
            return self.transform.prepare_image(im), label
        assert isinstance(self.transform, TrainTransform)
        im, label = self.dataset.load(i, min_short=float(row["scale"]))  # JPEGs may decode reduced
        return self.transform.prepare_image(im, row), label


def _stack_decoded(items: list[tuple[torch.Tensor | None, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of the items that decoded (all of them in training)."""
    good = [(x, y) for x, y in items if x is not None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good], dtype=torch.int64)
