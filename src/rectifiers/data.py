"""Image-classification data sets, all offline: `open_dataset(spec, split)` -> uint8 images + labels.

Specs (an unknown one is an error listing them):

- `mnist5k`: 5,000 MNIST digits embedded in the package (`embedded/README.md`); per class the first
  400 are `train`, the last 100 `val`; 1 x 28 x 28.
- `cifar10[:PATH]`: CIFAR-10 as distributed, `cifar-10-python.tar.gz` or its extracted
  `cifar-10-batches-py/` (`rectifiers.cifar10`; PATH defaults to `$RECTIFIERS_CIFAR10`); train = the
  five data batches (50,000), val = the test batch (10,000); 3 x 32 x 32.
- `idx:PATH`: a folder of MNIST-format IDX files, gzipped or raw (`train-images-idx3-ubyte[.gz]`,
  `train-labels-idx1-ubyte[.gz]`, `t10k-*` for `val`). Full MNIST, Fashion-MNIST, KMNIST...
- `folder:PATH`: the ImageNet layout `PATH/train/<class>/*`, `PATH/val/<class>/*` (`val` falls back to
  `test/`), a directory or a `.zip` (the layout may sit under one top folder). Classes sorted by name.
- `tinyimagenet:PATH`: Tiny ImageNet (`train/<wnid>/images/*`, `val/images/*` labelled by
  `val/val_annotations.txt`), a directory or a `.zip`; class names from `words.txt` when present.
- `fake[:n=512,val=128,size=32,classes=10,channels=3,seed=0]`: seeded synthetic images; each class is
  a smooth random pattern, each image that pattern plus noise, so a short fit can learn them.

Image files (`folder:`, `tinyimagenet:`):

- Converted to RGB (grayscale replicated) so a set never mixes 1- and 3-channel images; `channels=1`
  gives grayscale instead.
- A split's listing (names, labels, image sizes) is cached on disk, keyed by folder mtimes (a zip's
  size and mtime) rather than a stat per file, so later opens and other DDP ranks read no header.
- A split of one image size that fits `memory_budget` (`$RECTIFIERS_MEMORY_BUDGET`, default
  min(4 GiB, RAM / 4)) is decoded once into an `InMemoryDataset` and cached under
  `$RECTIFIERS_CACHE` (default `~/.cache/rectifiers`), written atomically under a lock file;
  otherwise a `FileDataset` decodes lazily in DataLoader workers. `memory_budget=0` forces files.
- An undecodable file is skipped, listed in `dataset.skipped` and counted in one warning. A
  `FileDataset` meets a truncated file only when decoding it: training substitutes the next image,
  evaluation (`load(substitute=False)`) skips it so no image is counted twice.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import logging
import os
import struct
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from rectifiers import cifar10, decode, layouts, runtime
from rectifiers.atomic_file import replacing

_SPEC_FORMS = (
    "mnist5k",
    "cifar10[:PATH]",
    "idx:PATH",
    "folder:PATH",
    "tinyimagenet:PATH",
    "fake[:n=512,val=128,size=32,classes=10,channels=3,seed=0]",
)
_SPLITS = ("train", "val", "test")
_CACHE_VERSION = 1
_log = logging.getLogger(__name__)
_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------------
# Data set classes


class ImageDataset(ABC):
    """A labelled image set: `ds[i]` is (uint8 (C, H, W) tensor, int label)."""

    classes: list[str]  # class names, index = label
    targets: torch.Tensor  # int64 (N,)
    num_channels: int  # 1 or 3
    skipped: list[str]  # files that could not be decoded
    source: str  # the spec it came from

    def __init__(
        self,
        classes: Sequence[str],
        targets: torch.Tensor,
        num_channels: int,
        source: str,
        skipped: Sequence[str] = (),
    ) -> None:
        targets = torch.as_tensor(targets, dtype=torch.int64)
        if targets.ndim != 1:
            raise ValueError(f"targets must be 1-D, got shape {tuple(targets.shape)}")
        if len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= len(classes)):
            raise ValueError(
                f"labels must lie in [0, {len(classes)}), got {int(targets.min())}..{int(targets.max())}"
            )
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 or 3, got {num_channels}")
        self.classes = list(classes)
        self.targets = targets
        self.num_channels = num_channels
        self.source = source
        self.skipped = list(skipped)

    def __len__(self) -> int:
        return len(self.targets)

    @abstractmethod
    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]: ...

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source!r}, {len(self)} images, {len(self.classes)} classes, "
            f"{self.num_channels} channel(s), {len(self.skipped)} skipped)"
        )


class InMemoryDataset(ImageDataset):
    """All images decoded into one uint8 tensor (N, C, H, W), same size; the loader batches by indexing."""

    images: torch.Tensor

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        classes: Sequence[str],
        source: str,
        skipped: Sequence[str] = (),
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        super().__init__(classes, targets, images.shape[1], source, skipped)
        if len(images) != len(self.targets):
            raise ValueError(f"{len(images)} images but {len(self.targets)} labels")
        self.images = images.contiguous()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.targets[i])

    @property
    def image_size(self) -> tuple[int, int]:
        return self.images.shape[2], self.images.shape[3]


class NameList(Sequence[str]):
    """File names packed into one byte buffer and offsets, decoded on access: with no Python object per
    name (whose reference counts reads would write), forked DataLoader workers share the pages."""

    def __init__(self, buffer: np.ndarray, offsets: np.ndarray) -> None:
        if buffer.dtype != np.uint8 or offsets.ndim != 1 or len(offsets) < 1:
            raise ValueError("a NameList needs a uint8 buffer and at least one offset")
        self.buffer = buffer
        self.offsets = offsets.astype(np.int64, copy=False)

    @classmethod
    def of(cls, names: Sequence[str]) -> NameList:
        if isinstance(names, NameList):
            return names
        encoded = [n.encode() for n in names]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"name {i} of {n}")
        i %= n
        return self.buffer[self.offsets[i] : self.offsets[i + 1]].tobytes().decode()


class FileDataset(ImageDataset):
    """Images decoded lazily from a directory or zip (sizes may differ), in DataLoader workers."""

    def __init__(
        self,
        store: decode.Store,
        names: Sequence[str],
        targets: torch.Tensor,
        classes: Sequence[str],
        num_channels: int,
        source: str,
        skipped: Sequence[str] = (),
        max_pixels: int = decode.DEFAULT_MAX_PIXELS,
        cache_path: Path | None = None,
    ) -> None:
        super().__init__(classes, targets, num_channels, source, skipped)
        self.cache_path = cache_path  # its listing's cache file (without suffix): `cached_statistics`
        if len(names) != len(self.targets):
            raise ValueError(f"{len(names)} files but {len(self.targets)} labels")
        self.store = store
        self.names = NameList.of(names)
        self.mode = "L" if num_channels == 1 else "RGB"
        self.max_pixels = max_pixels
        self._bad: set[int] = set()

    def load(
        self, i: int, min_short: float | None = None, substitute: bool = True
    ) -> tuple[Image.Image, int]:
        """The decoded PIL image of sample `i` and its label. `min_short`: the shorter side the caller
        resizes to (JPEGs may decode at a reduced scale). A file that fails to decode is replaced by the
        next decodable one, or with `substitute=False` raises BadImageError naming it."""
        if not substitute:
            try:
                im = decode.read_image(self.store, self.names[i], self.mode, self.max_pixels, min_short)
            except decode.BadImageError as err:
                raise decode.BadImageError(f"{self.store.describe(self.names[i])}: {err}") from None
            return im, int(self.targets[i])
        n = len(self.names)
        for k in range(n):
            j = (i + k) % n
            if j in self._bad:
                continue
            try:
                im = decode.read_image(self.store, self.names[j], self.mode, self.max_pixels, min_short)
            except decode.BadImageError as err:
                self._bad.add(j)
                self.skipped.append(self.store.describe(self.names[j]))
                warnings.warn(
                    f"{self.store.describe(self.names[j])}: skipped ({err}); using the next image",
                    stacklevel=2,
                )
                continue
            return im, int(self.targets[j])
        raise ValueError(f"{self.source}: no image of the set could be decoded")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        im, label = self.load(i)
        return pil_to_tensor(im), label


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """uint8 (C, H, W) of an "RGB" or "L" image."""
    return torch.from_numpy(decode.image_to_array(im).copy()).permute(2, 0, 1).contiguous()


# --------------------------------------------------------------------------------------------------
# Spec parsing


def open_dataset(
    spec: str,
    split: str = "train",
    *,
    channels: int | None = None,
    memory_budget: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
    workers: int | None = None,
    max_pixels: int = decode.DEFAULT_MAX_PIXELS,
) -> ImageDataset:
    """Open the `split` ("train", "val"; "test" means "val" where a set has no separate test) of `spec`.

    Keyword arguments apply to image files (`folder:`, `tinyimagenet:`): `channels` (3 = RGB, the
    default, or 1), the in-memory budget in bytes, the cache folder (or `cache=False`), the number of
    decoding processes (default min(8, cores)) and the pixel limit.

    >>> ds = open_dataset("fake:n=64,size=8")
    >>> ds.images.shape, ds.targets.dtype
    (torch.Size([64, 3, 8, 8]), torch.int64)
    """
    if not isinstance(spec, str):
        raise ValueError(f"a data spec is a string, got {type(spec).__name__}")
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(_SPLITS)}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    kind, sep, arg = spec.partition(":")
    if kind == "mnist5k" and not sep:
        return _mnist5k(split, spec)
    if kind == "cifar10":
        return _cifar10(arg, split, spec)
    if kind == "fake":
        return _fake(arg, split, spec)
    if kind in ("idx", "folder", "tinyimagenet") and arg:
        path = Path(arg).expanduser()
        if kind == "idx":
            return _idx(path, split, spec)
        files = _FileSplit(
            spec,
            kind,
            split,
            decode.open_store(path),
            mode="L" if channels == 1 else "RGB",
            memory_budget=_memory_budget() if memory_budget is None else memory_budget,
            cache_dir=Path(runtime.cache_root() if cache_dir is None else cache_dir).expanduser()
            if cache
            else None,
            workers=min(8, os.cpu_count() or 1) if workers is None else workers,
            max_pixels=max_pixels,
        )
        return _image_files(files)
    raise ValueError(f"unknown data spec {spec!r}; valid forms: {', '.join(_SPEC_FORMS)}")


def _memory_budget() -> int:
    env = os.environ.get("RECTIFIERS_MEMORY_BUDGET")
    if env:
        try:
            return int(env)
        except ValueError:
            raise ValueError(f"RECTIFIERS_MEMORY_BUDGET must be a number of bytes, got {env!r}") from None
    budget = 4 << 30
    with contextlib.suppress(ValueError, OSError, AttributeError):
        budget = min(budget, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4)
    return budget


# --------------------------------------------------------------------------------------------------
# mnist5k


MNIST5K_FILE = Path(__file__).with_name("embedded") / "mnist5k.npz"


@functools.lru_cache(maxsize=1)
def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(X uint8 (5000, 784), y int64 (5000,)): the digits embedded in the package (embedded/README.md)."""
    with np.load(MNIST5K_FILE, allow_pickle=False) as archive:
        X, y = archive["images"], archive["labels"]
    if X.shape != (5000, 28, 28) or X.dtype != np.uint8 or y.shape != (5000,):
        raise ValueError(f"{MNIST5K_FILE}: unexpected arrays {X.shape} {X.dtype}, {y.shape}")
    return X.reshape(5000, 784), y.astype(np.int64)


def mnist5k_split_indices(y: np.ndarray, split: str) -> np.ndarray:
    """Row indices of `split` in the digits' table: per class the first 400 rows are train, the rest val."""
    rows = [np.flatnonzero(y == c) for c in range(10)]
    part = [r[:400] if split == "train" else r[400:] for r in rows]
    return np.concatenate(part)


def _mnist5k(split: str, spec: str) -> InMemoryDataset:
    X, y = mnist5k_arrays()
    rows = mnist5k_split_indices(y, split)
    images = torch.from_numpy(X[rows].reshape(-1, 1, 28, 28).copy())
    return InMemoryDataset(images, torch.from_numpy(y[rows]), [str(c) for c in range(10)], spec)


def _cifar10(arg: str, split: str, spec: str) -> InMemoryDataset:
    images, labels, classes = cifar10.read_split(
        cifar10.resolve_path(arg), "train" if split == "train" else "val"
    )
    return InMemoryDataset(torch.from_numpy(images), torch.from_numpy(labels), classes, spec)


# --------------------------------------------------------------------------------------------------
# IDX (MNIST format)

_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx(root: Path, stem: str) -> Path:
    # Both spellings exist in the wild: "train-images-idx3-ubyte" and "train-images.idx3-ubyte".
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root}: no {stem} or {stem}.gz (MNIST-format IDX file)")


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Read an IDX file (gzipped or raw) of unsigned bytes with `expected_ndim` dimensions."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    if raw[2] != 0x08 or ndim != expected_ndim:  # 0x08: unsigned bytes, the only type MNIST sets use
        raise ValueError(
            f"{path}: magic number {int.from_bytes(raw[:4], 'big')} (expected {0x0800 + expected_ndim}: "
            f"unsigned bytes, {expected_ndim}-D)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise ValueError(f"{path}: header says {dims} = {size} bytes of data, file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx(root: Path, split: str, spec: str) -> InMemoryDataset:
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (expected MNIST-format IDX files)")
    images_stem, labels_stem = _IDX_STEMS["train" if split == "train" else "val"]
    images_path, labels_path = _find_idx(root, images_stem), _find_idx(root, labels_stem)
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if len(images) == 0:
        raise ValueError(f"{images_path}: no images")
    # The class count must agree between splits, so it comes from every label file present.
    top = int(labels.max())
    for stem in (s[1] for s in _IDX_STEMS.values()):
        with contextlib.suppress(FileNotFoundError):
            other = _find_idx(root, stem)
            if other != labels_path:
                top = max(top, int(read_idx(other, 1).max()))
    classes = [str(c) for c in range(top + 1)]
    return InMemoryDataset(
        torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels), classes, spec
    )


# --------------------------------------------------------------------------------------------------
# fake

_FAKE_OPTIONS = {"n": 512, "val": None, "size": 32, "classes": 10, "channels": 3, "seed": 0}


def _fake(arg: str, split: str, spec: str) -> InMemoryDataset:
    opts = dict(_FAKE_OPTIONS)
    for item in filter(None, arg.split(",")):
        key, eq, value = item.partition("=")
        key = key.strip()
        if key not in opts or not eq:
            raise ValueError(f"bad fake option {item!r}; valid: {', '.join(f'{k}=' for k in _FAKE_OPTIONS)}")
        try:
            opts[key] = int(value)
        except ValueError:
            raise ValueError(f"fake option {key} must be an integer, got {value!r}") from None
    n_val = opts["n"] // 4 if opts["val"] is None else opts["val"]
    n = opts["n"] if split == "train" else n_val
    size, k, c, seed = opts["size"], opts["classes"], opts["channels"], opts["seed"]
    if n < 1 or size < 1 or k < 1 or c not in (1, 3):
        raise ValueError(f"fake needs n, val, size, classes >= 1 and channels 1 or 3, got {opts}")
    images, labels = make_fake_images(n, size, k, c, seed, split)
    return InMemoryDataset(images, labels, [f"class{i}" for i in range(k)], spec)


def make_fake_images(
    n: int, size: int, classes: int, channels: int, seed: int, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (n, channels, size, size) and balanced labels (n,). Image = 0.2 + 0.6 x its class
    pattern (a 4x4 random grid upsampled smoothly, the same in every split) + Gaussian noise of std
    0.12, clipped to [0, 1] and scaled to 0..255. The split picks the noise and label streams."""
    grid = torch.rand(classes, channels, 4, 4, generator=torch.Generator().manual_seed(seed))
    templates = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)
    stream = 1 if split == "train" else 2
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, stream]).generate_state(1)[0]))
    labels = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    images = torch.empty(n, channels, size, size, dtype=torch.uint8)
    for start in range(0, n, 256):  # chunks bound the float temporaries at 224-px sizes
        lab = labels[start : start + 256]
        noise = torch.randn(len(lab), channels, size, size, generator=g)
        x = 0.2 + 0.6 * templates[lab] + 0.12 * noise
        images[start : start + len(lab)] = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels


# --------------------------------------------------------------------------------------------------
# Image files: folder and Tiny ImageNet layouts, in memory when they fit, with a disk cache


@dataclass(frozen=True)
class _FileSplit:
    """One split of an image-file set being opened, and how (`open_dataset`'s keyword arguments)."""

    spec: str
    kind: str  # "folder" or "tinyimagenet"
    split: str
    store: decode.Store
    mode: str  # "RGB" or "L"
    memory_budget: int  # bytes of decoded pixels a set may take to be held in memory
    cache_dir: Path | None
    workers: int
    max_pixels: int

    def cache_path(self, version: Any, suffix: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = [_CACHE_VERSION, self.kind, self.split, self.mode, self.max_pixels, version]
        digest = hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:20]
        return self.cache_dir / f"{self.kind}-{self.split}{suffix}-{digest}"

    def map_files(
        self, fn: Callable[..., list[Any]], names: list[str], verb: str
    ) -> tuple[list[Any], list[int], list[str]]:
        """`fn(store, names, max_pixels=...)` over the files in parallel: the results, the positions of
        those that succeeded, and the paths of those whose result is a failure reason (a str, logged);
        a ValueError when none succeeded."""
        fn = functools.partial(fn, max_pixels=self.max_pixels)
        results = decode.map_files(fn, self.store, names, self.workers)
        failed = [
            (self.store.describe(n), r) for n, r in zip(names, results, strict=True) if isinstance(r, str)
        ]
        for path, reason in failed:
            _log.info("%s: skipped (%s)", path, reason)
        ok = [i for i, r in enumerate(results) if not isinstance(r, str)]
        if not ok:
            raise ValueError(
                f"{self.spec}: none of the {len(names)} files of the {self.split!r} split could be {verb}"
            )
        return results, ok, [path for path, _ in failed]


@dataclass
class _Probed:
    """What opening a folder learns before decoding a pixel (cached on disk): the readable files, their
    labels and (width, height), the class names, and the files skipped for a missing or bad header."""

    names: NameList
    targets: np.ndarray  # int64 (N,)
    classes: list[str]
    sizes: np.ndarray  # int64 (N, 2): width, height
    skipped: list[str]

    def common_size(self) -> tuple[int, int] | None:
        """(width, height) when every file has it, else None."""
        if len(self.sizes) and bool((self.sizes == self.sizes[0]).all()):
            return int(self.sizes[0, 0]), int(self.sizes[0, 1])
        return None


def _image_files(f: _FileSplit) -> ImageDataset:
    c = 1 if f.mode == "L" else 3
    listing_path, probed = _probed_listing(f)
    size = probed.common_size()
    ds: ImageDataset | None = None
    if size is not None and len(probed.names) * c * size[0] * size[1] <= f.memory_budget:
        # Decoded pixels are cached under each file's size and mtime (a file rewritten in place,
        # same folder mtime, is decoded again) and the labels (annotations may change alone).
        label_digest = hashlib.sha256(
            probed.targets.tobytes() + "\n".join(probed.classes).encode()
        ).hexdigest()
        cache_path = f.cache_path([f.store.stat_key(probed.names), label_digest], "-pixels")
        with _locked(cache_path):
            ds = _load_cache(cache_path, f.spec, f.memory_budget)
            if ds is None:
                ds = _decode_all(f, probed)
                if isinstance(ds, InMemoryDataset):
                    _save_cache(cache_path, ds)
    if ds is None:
        labels = torch.from_numpy(probed.targets)
        ds = FileDataset(
            f.store,
            probed.names,
            labels,
            probed.classes,
            c,
            f.spec,
            probed.skipped,
            f.max_pixels,
            listing_path,
        )
    if ds.skipped:
        warnings.warn(
            f"{f.spec} ({f.split}): skipped {len(ds.skipped)} file(s) that could not be decoded: "
            + ", ".join(ds.skipped[:3])
            + (", ..." if len(ds.skipped) > 3 else ""),
            stacklevel=3,
        )
    return ds


def _probed_listing(f: _FileSplit) -> tuple[Path | None, _Probed]:
    """The split's listing with every file's size, from the cache (keyed by `Store.content_key`) or by
    reading every header in parallel; concurrent openers (DDP ranks) wait for the first one's cache."""
    path = f.cache_path(f.store.content_key(), "-listing")
    with _locked(path):
        probed = _read_cache(path, "listing cache", "listing again", _listing_from)
        if probed is None:
            lister = layouts.folder_listing if f.kind == "folder" else layouts.tinyimagenet_listing
            probed = _probe(f, lister(f.store, f.split))
            _save_listing(path, probed)
    return path, probed


def _probe(f: _FileSplit, listing: layouts.Listing) -> _Probed:
    sizes, good, failed = f.map_files(decode.probe_names, listing.names, "read")
    return _Probed(
        NameList.of([listing.names[i] for i in good]),
        np.array([listing.targets[i] for i in good], dtype=np.int64),
        list(listing.classes),
        np.array([sizes[i] for i in good], dtype=np.int64).reshape(-1, 2),
        list(listing.skipped) + failed,
    )


def _save_listing(path: Path | None, probed: _Probed) -> None:
    arrays = {
        "version": np.array(_CACHE_VERSION),
        "name_bytes": probed.names.buffer,
        "name_offsets": probed.names.offsets,
        "targets": probed.targets,
        "classes": np.array(probed.classes, dtype=str),
        "sizes": probed.sizes,
        "skipped": np.array(probed.skipped, dtype=str),
    }
    _write_cache(path, arrays, "listing cache", "; the next open lists again")


def _listing_from(f: Any) -> _Probed:
    probed = _Probed(
        NameList(f["name_bytes"].astype(np.uint8), f["name_offsets"]),
        f["targets"].astype(np.int64),
        [str(c) for c in f["classes"]],
        f["sizes"].astype(np.int64).reshape(-1, 2),
        [str(x) for x in f["skipped"]],
    )
    if not len(probed.names) == len(probed.targets) == len(probed.sizes):
        raise ValueError("names, labels and sizes differ in length")
    return probed


def cached_statistics(
    ds: ImageDataset, key: Sequence[Any], compute: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """`compute()` (tensors, None or floats by name), cached beside a file set's listing under `key` so
    that DDP ranks and later runs load it instead; uncached sets just compute."""
    listing = getattr(ds, "cache_path", None)
    if listing is None:
        return compute()
    digest = hashlib.sha256(json.dumps(list(key), default=str).encode()).hexdigest()[:12]
    path = listing.with_name(f"{listing.name}-stats-{digest}")
    with _locked(path):
        with (
            contextlib.suppress(OSError, ValueError, KeyError, EOFError),
            np.load(path.with_suffix(".npz"), allow_pickle=False) as f,
        ):
            return {k: None if f[k].dtype == bool else _from_array(f[k]) for k in f.files}
        result = compute()
        arrays = {k: np.array(False) if v is None else np.asarray(v) for k, v in result.items()}
        _write_cache(path, arrays, "statistics cache", stacklevel=4)
        return result


def _from_array(a: np.ndarray) -> Any:
    return float(a) if a.ndim == 0 else torch.from_numpy(a.copy())


def _decode_all(f: _FileSplit, probed: _Probed) -> ImageDataset | None:
    """Decode every file (in parallel) into one uint8 tensor; None when the decoded sizes differ after
    all (files replaced since the listing was cached), so the caller decodes lazily instead."""
    names = list(probed.names)
    decoder = functools.partial(decode.decode_names, mode=f.mode)
    arrays, ok, failed = f.map_files(decoder, names, "decoded")  # truncated files fail only here
    if len({arrays[i].shape for i in ok}) != 1:
        return None
    images = torch.from_numpy(np.stack([arrays[i] for i in ok])).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(probed.targets[ok])
    return InMemoryDataset(images, labels, probed.classes, f.spec, probed.skipped + failed)


@contextlib.contextmanager
def _locked(cache_path: Path | None) -> Iterator[None]:
    """An exclusive lock beside the cache file, so concurrent openers (DDP ranks) build the cache once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent openers each decode; the atomic write keeps it correct
        fcntl = None  # type: ignore[assignment]
    if cache_path is None or fcntl is None:
        yield
        return
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(cache_path.with_suffix(".lock"), "a+b")  # noqa: SIM115 (held across the yield)
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _save_cache(path: Path | None, ds: InMemoryDataset) -> None:
    meta = {
        "version": np.array(_CACHE_VERSION),
        "shape": np.array(ds.images.shape),
        "targets": ds.targets.numpy(),
        "classes": np.array(ds.classes, dtype=str),
        "skipped": np.array(ds.skipped, dtype=str),
    }
    _write_cache(path, meta, "data cache", "; the next open decodes again", images=ds.images.numpy())


def _write_cache(
    path: Path | None,
    arrays: dict[str, Any],
    what: str,
    fallback: str = "",
    images: np.ndarray | None = None,
    stacklevel: int = 5,
) -> None:
    """Write `path`.npy (`images`, when given), then `path`.npz (`arrays`), each atomically: the .npz
    last, so a reader that finds it finds complete images. A cache only saves time, so a failure
    (a full disk, a read-only folder) is a warning; `fallback` says what the next open does."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if images is not None:
            with replacing(path.with_suffix(".npy")) as tmp, open(tmp, "wb") as f:
                np.save(f, images)
        with replacing(path.with_suffix(".npz")) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    except OSError as err:
        warnings.warn(f"could not write the {what} {path} ({err}){fallback}", stacklevel=stacklevel)


def _load_cache(path: Path | None, spec: str, memory_budget: int) -> InMemoryDataset | None:
    def images_from(meta: Any) -> InMemoryDataset | None:
        assert path is not None
        shape = tuple(int(d) for d in meta["shape"])
        if int(np.prod(shape)) > memory_budget:
            return None  # opened with a smaller budget now: decode lazily instead
        array = np.load(path.with_suffix(".npy"), allow_pickle=False)
        if array.shape != shape or array.dtype != np.uint8:
            raise ValueError(f"images {array.shape} {array.dtype}, expected {shape} uint8")
        targets = torch.from_numpy(meta["targets"].astype(np.int64))
        skipped = [str(s) for s in meta["skipped"]]
        return InMemoryDataset(
            torch.from_numpy(array), targets, [str(c) for c in meta["classes"]], spec, skipped
        )

    return _read_cache(path, "data cache", "decoding again", images_from)


def _read_cache(path: Path | None, what: str, again: str, build: Callable[[Any], _T | None]) -> _T | None:
    """`build(arrays)` of the cache file `path`.npz; None when there is none or it is of another cache
    version, or (with a warning saying what happens `again`) when it cannot be read or `build` refuses it."""
    if path is None or not path.with_suffix(".npz").is_file():
        return None
    try:
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as f:
            return build(f) if int(f["version"]) == _CACHE_VERSION else None
    except (OSError, ValueError, KeyError, EOFError) as err:
        warnings.warn(f"ignoring the unreadable {what} {path} ({err}); {again}", stacklevel=5)
        return None
