"""Batching and sharding: rank coverage, global-batch equivalence, set_epoch, resume, file workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rectifiers.data import FileDataset, InMemoryDataset, open_dataset
from rectifiers.loader import BatchLoader
from rectifiers.transforms import EvalTransform, Normalize, TrainTransform


def _indexed(n: int, size: int = 8) -> InMemoryDataset:
    """Image i is filled with the value i (mod 256), label i % 5: batches reveal their indices."""
    images = (
        (torch.arange(n) % 256).to(torch.uint8)[:, None, None, None].expand(n, 1, size, size).contiguous()
    )
    return InMemoryDataset(images, torch.arange(n) % 5, [str(k) for k in range(5)], "indexed")


def _identity(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    return x.float()


def _ids(loader: BatchLoader) -> list[int]:
    return [int(v) for x, _ in loader for v in x[:, 0, 0, 0].tolist()]


def test_train_ranks_cover_the_epoch_equally_without_overlap() -> None:
    n, world = 103, 2
    ds = _indexed(n)
    loaders = [
        BatchLoader(ds, 10, train=True, transform=_identity, rank=r, world_size=world) for r in range(world)
    ]
    assert [lo.num_samples for lo in loaders] == [51, 51] and [len(lo) for lo in loaders] == [5, 5]
    full = [
        _ids(BatchLoader(ds, 10, train=True, transform=_identity, rank=r, world_size=world, drop_last=False))
        for r in range(world)
    ]
    assert len(full[0]) == len(full[1]) == 51
    assert not set(full[0]) & set(full[1]) and len(set(full[0]) | set(full[1])) == 102  # one dropped
    dropped = [_ids(lo) for lo in loaders]
    assert len(dropped[0]) == len(dropped[1]) == 50


def test_eval_ranks_see_every_image_exactly_once() -> None:
    n, world = 11, 3
    ds = _indexed(n)
    seen: list[int] = []
    for r in range(world):
        loader = BatchLoader(ds, 2, train=False, transform=_identity, rank=r, world_size=world)
        ids = _ids(loader)
        assert ids == list(range(r, n, world)) and loader.num_samples == len(ids)
        assert len(loader) == -(-len(ids) // 2)  # the last partial batch is kept
        seen += ids
    assert sorted(seen) == list(range(n))


def test_labels_follow_their_images() -> None:
    ds = _indexed(40)
    for x, y in BatchLoader(ds, 8, train=True, transform=_identity, seed=3):
        assert y.dtype == torch.int64 and torch.equal(y, x[:, 0, 0, 0].long() % 5)


def test_set_epoch_reshuffles_reproducibly() -> None:
    ds = _indexed(64)
    loader = BatchLoader(ds, 8, train=True, transform=_identity, seed=1)
    loader.set_epoch(0)
    a = _ids(loader)
    b = _ids(loader)
    loader.set_epoch(1)
    c = _ids(loader)
    assert a == b and a != c and sorted(a) == sorted(c) == list(range(64))
    other = BatchLoader(ds, 8, train=True, transform=_identity, seed=1, rank=1, world_size=2)
    other.set_epoch(1)
    mine = BatchLoader(ds, 8, train=True, transform=_identity, seed=1, rank=0, world_size=2)
    mine.set_epoch(1)
    assert sorted(_ids(mine) + _ids(other)) == list(range(64))  # same permutation on every rank
    assert _ids(BatchLoader(ds, 8, train=True, transform=_identity, seed=2)) != a


def test_augmented_epoch_repeats_and_resumes_exactly() -> None:
    ds = open_dataset("fake:n=48,size=16")
    t = TrainTransform(12, (14, 20))
    loader = BatchLoader(ds, 8, train=True, transform=t, seed=5)
    loader.set_epoch(3)
    first = list(loader)
    second = list(loader)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second, strict=True)
    )
    loader.set_epoch(3, start_batch=4)
    resumed = list(loader)
    assert len(resumed) == 2
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first[4:], resumed, strict=True))
    loader.set_epoch(4)
    assert not torch.equal(next(iter(loader))[0], first[0][0])
    with pytest.raises(ValueError, match="start_batch"):
        loader.set_epoch(0, start_batch=7)


def test_two_ranks_see_the_same_augmented_global_batches_as_one() -> None:
    """Rank r takes positions r, r + 2, ...: a 2 x 4 run equals a 1 x 8 run, augmentation included."""
    ds = open_dataset("fake:n=40,size=16")
    t = TrainTransform(12, (14, 20), normalize=Normalize.from_dataset(ds))
    single = list(BatchLoader(ds, 8, train=True, transform=t, seed=9))
    ranks = [
        list(BatchLoader(ds, 4, train=True, transform=t, seed=9, rank=r, world_size=2)) for r in range(2)
    ]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 5
    for k, (x, y) in enumerate(single):
        for r in range(2):
            assert torch.equal(y[r::2], ranks[r][k][1])
            assert torch.allclose(x[r::2], ranks[r][k][0], atol=1e-5)


def test_plain_callable_train_transform_gets_a_seeded_generator() -> None:
    ds = _indexed(32)

    def noisy(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return x.float() + torch.rand(x.shape[0], 1, 1, 1, generator=generator)

    a = [x for x, _ in BatchLoader(ds, 8, train=True, transform=noisy, seed=4)]
    b = [x for x, _ in BatchLoader(ds, 8, train=True, transform=noisy, seed=4)]
    c = [x for x, _ in BatchLoader(ds, 8, train=True, transform=noisy, seed=4, rank=1, world_size=2)]
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0] - a[0].floor(), c[0] - c[0].floor())  # another rank, another stream


def test_output_contract_and_channels_last() -> None:
    ds = open_dataset("fake:n=20,size=16")
    t = TrainTransform(12, (12, 16))
    x, y = next(iter(BatchLoader(ds, 6, train=True, transform=t)))
    assert x.shape == (6, 3, 12, 12) and x.dtype == torch.float32 and y.shape == (6,)
    e = EvalTransform(16, 12)
    x, _ = next(iter(BatchLoader(ds, 6, train=False, transform=e, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_loader_validates() -> None:
    ds = _indexed(10)
    with pytest.raises(ValueError, match="no full batch"):
        BatchLoader(ds, 8, train=True, transform=_identity, world_size=2)
    assert len(BatchLoader(ds, 8, train=True, transform=_identity, world_size=2, drop_last=False)) == 1
    with pytest.raises(ValueError, match="rank"):
        BatchLoader(ds, 2, train=True, transform=_identity, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(ds, 0, train=False, transform=_identity)


# --------------------------------------------------------------------------------------------------
# File data sets: DataLoader workers


def _mixed_folder(root: Path, n: int = 10) -> FileDataset:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / "train" / f"c{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        w, h = 20 + i, 16 + 2 * i  # every image another size
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{i}.png")
    ds = open_dataset(f"folder:{root}", cache=False)
    assert isinstance(ds, FileDataset)
    return ds


def test_file_dataset_batches_with_workers_match_the_main_process(tmp_path: Path) -> None:
    ds = _mixed_folder(tmp_path)
    t = TrainTransform(12, (16, 24))
    serial = list(BatchLoader(ds, 4, train=True, transform=t, seed=2, num_workers=0))
    workers = BatchLoader(ds, 4, train=True, transform=t, seed=2, num_workers=2)
    parallel = list(workers)
    assert len(serial) == len(parallel) == 2
    for (a, ya), (b, yb) in zip(serial, parallel, strict=True):
        assert a.shape == (4, 3, 12, 12) and a.dtype == torch.float32
        assert torch.equal(a, b) and torch.equal(ya, yb)
    workers.set_epoch(1)  # persistent workers follow the new epoch's order
    assert not torch.equal(next(iter(workers))[0], parallel[0][0])


def test_file_dataset_eval_covers_every_image(tmp_path: Path) -> None:
    ds = _mixed_folder(tmp_path, n=7)
    e = EvalTransform(14, 12)
    labels = []
    for r in range(2):
        for x, y in BatchLoader(ds, 3, train=False, transform=e, rank=r, world_size=2):
            assert x.shape[1:] == (3, 12, 12)
            labels += y.tolist()
    assert sorted(labels) == sorted(ds.targets.tolist())


def test_file_dataset_needs_the_matching_transform(tmp_path: Path) -> None:
    ds = _mixed_folder(tmp_path, n=4)
    with pytest.raises(ValueError, match="needs a TrainTransform"):
        BatchLoader(ds, 2, train=True, transform=_identity)
    with pytest.raises(ValueError, match="needs a EvalTransform"):
        BatchLoader(ds, 2, train=False, transform=TrainTransform(8, (8, 8)))


def test_a_file_that_breaks_mid_run_is_replaced_and_the_epoch_completes(tmp_path: Path) -> None:
    ds = _mixed_folder(tmp_path, n=6)
    broken = tmp_path / ds.names[2]
    raw = broken.read_bytes()
    broken.write_bytes(raw[: len(raw) // 2])  # header intact: only decoding fails, during the run
    loader = BatchLoader(ds, 3, train=True, transform=TrainTransform(10, (12, 14)), seed=1)
    with pytest.warns(UserWarning, match="skipped"):
        batches = list(loader)
    assert len(batches) == 2 and all(x.shape == (3, 3, 10, 10) for x, _ in batches)
