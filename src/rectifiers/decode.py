"""Safe image decoding: Pillow under a pixel limit, conversion to one mode, and file stores.

Everything that touches untrusted image bytes lives here. A header above `max_pixels` (or Pillow's
own bomb warning) is refused before any pixel is decoded; any decode failure raises `BadImageError`
with the reason, which callers skip and count. Images convert to "RGB" or "L", 16-bit grayscale
scaled (not clipped) to 8 bits.

A store (`DirStore`, `ZipStore`) reads member files by relative name and pickles without open
handles, so each worker process opens its own (a zip handle shared across a fork interleaves reads).
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# File name endings that are read as images; anything else in a class folder is ignored.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pbm", ".tif", ".tiff")

# Largest accepted image, in pixels (2^26 = 8192 x 8192). ImageNet's largest photos are far below it;
# a header above it is treated as a decompression bomb. Pillow's own limit (89.5 M) also applies.
DEFAULT_MAX_PIXELS = 1 << 26

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class BadImageError(ValueError):
    """A file that cannot be decoded into an image (the message says why)."""


def is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def open_image(fp: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image lazily (header only) and enforce the pixel limit."""
    try:
        with warnings.catch_warnings():
            # Pillow warns above its limit and raises above twice that; both mean "bomb" here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fp)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise BadImageError(f"decompression bomb refused ({err})") from err
    except Exception as err:  # Pillow raises many types on hostile bytes; all mean "not an image"
        raise BadImageError(f"not a readable image ({type(err).__name__}: {err})") from err
    if im.width * im.height > max_pixels:
        raise BadImageError(
            f"{im.width}x{im.height} exceeds the {max_pixels}-pixel limit (decompression bomb?)"
        )
    if im.width < 1 or im.height < 1:
        raise BadImageError(f"empty image ({im.width}x{im.height})")
    return im


def decode_image(
    fp: Any, mode: str, max_pixels: int = DEFAULT_MAX_PIXELS, min_short: float | None = None
) -> Image.Image:
    """Open, decode and convert one image to `mode` ("RGB" or "L"). `min_short`: JPEGs decode at a
    reduced DCT scale (Pillow's `draft`) as long as the shorter side stays >= `min_short` px, for
    images shrunk afterwards."""
    im = open_image(fp, max_pixels)
    if min_short is not None and im.format == "JPEG":
        ratio = max(min_short, 1.0) / min(im.size)
        if ratio < 1.0:
            im.draft(mode, (math.ceil(im.width * ratio), math.ceil(im.height * ratio)))
    try:
        im.load()
        if im.mode in _SIXTEEN_BIT_MODES:
            # 16-bit data (PNG opens as I;16 or I): keep the top 8 bits instead of clipping at 255.
            a = np.asarray(im).astype(np.int64)
            im = Image.fromarray((np.clip(a, 0, 65535) >> 8).astype(np.uint8), "L")
        elif im.mode == "F":
            im = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8), "L")
        elif im.mode == "P" and "transparency" in im.info:
            im = im.convert("RGBA")  # the direct P -> RGB path warns about byte transparency
        if im.mode != mode:
            im = im.convert(mode)
    except Exception as err:  # truncated data, unsupported conversion, corrupt chunks
        raise BadImageError(f"cannot decode ({type(err).__name__}: {err})") from err
    return im


def image_to_array(im: Image.Image) -> np.ndarray:
    """uint8 (H, W, C) array of an "RGB" or "L" image (C = 1 for "L")."""
    a = np.asarray(im, dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


# --------------------------------------------------------------------------------------------------
# Stores: read member files of a directory or a zip archive by their relative name ("a/b.jpg").


class DirStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DirStore({str(self.root)!r})"

    def describe(self, name: str) -> str:
        return str(self.root / name)

    def _walk(self) -> Iterator[tuple[Path, list[str], list[str]]]:
        """os.walk below the root, hidden folders left out, in sorted order."""
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            yield Path(dirpath), dirnames, sorted(filenames)

    def listing(self) -> tuple[list[str], set[str]]:
        """All file names and all directory names below the root, relative, "/"-separated."""
        files: list[str] = []
        dirs: set[str] = set()
        for folder, dirnames, filenames in self._walk():
            rel = folder.relative_to(self.root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            dirs.update(prefix + d for d in dirnames)
            files.extend(prefix + f for f in filenames)
        return files, dirs

    def open(self, name: str) -> Any:
        """A binary file object (for reading just a header)."""
        return open(self.root / name, "rb")

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def content_key(self) -> list[Any]:
        """Identifies the files below the root without a stat per image: every folder's mtime (changed
        by any add, remove or rename in it) and the size and mtime of non-image files (annotations).
        An image rewritten in place keeps its folder's mtime: `stat_key` catches that."""
        out: list[Any] = [str(self.root.resolve())]
        for folder, _, filenames in self._walk():
            out.append((folder.relative_to(self.root).as_posix(), os.stat(folder).st_mtime_ns))
            for name in (f for f in filenames if not is_image_name(f)):
                st = (folder / name).stat()
                out.append((name, st.st_size, st.st_mtime_ns))
        return out

    def stat_key(self, names: Sequence[str]) -> list[Any]:
        """What identifies this version of the files `names`: each one's size and mtime."""
        out: list[Any] = [str(self.root.resolve())]
        for n in names:
            st = (self.root / n).stat()
            out.append((n, st.st_size, st.st_mtime_ns))
        return out


class ZipStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._zf: zipfile.ZipFile | None = None  # opened on first use, once per process
        self._pid = -1

    def __repr__(self) -> str:
        return f"ZipStore({str(self.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_zf": None, "_pid": -1}

    def _open(self) -> zipfile.ZipFile:
        if self._zf is None or self._pid != os.getpid():
            try:
                self._zf = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as err:
                raise ValueError(f"{self.path}: not a readable zip archive ({err})") from err
            self._pid = os.getpid()
        return self._zf

    def describe(self, name: str) -> str:
        return f"{self.path}:{name}"

    def listing(self) -> tuple[list[str], set[str]]:
        files: list[str] = []
        dirs: set[str] = set()
        for n in self._open().namelist():
            parts = n.rstrip("/").split("/")
            if n.endswith("/"):
                dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
            else:
                files.append(n)
                dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        return files, dirs

    def open(self, name: str) -> Any:
        """A binary file object (for reading just a header)."""
        return self._open().open(name)

    def read(self, name: str) -> bytes:
        try:
            return self._open().read(name)
        except (zipfile.BadZipFile, OSError, KeyError, EOFError) as err:
            raise BadImageError(f"{self.describe(name)}: cannot read ({type(err).__name__}: {err})") from err

    def content_key(self) -> list[Any]:
        # The archive's own size and mtime identify every member: no listing needed.
        st = self.path.stat()
        return [str(self.path.resolve()), st.st_size, st.st_mtime_ns]

    def stat_key(self, names: Sequence[str]) -> list[Any]:
        return self.content_key()


Store = DirStore | ZipStore


def open_store(path: Path) -> Store:
    """A store for a directory or a .zip file; FileNotFoundError names a missing path."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        return DirStore(path)
    if zipfile.is_zipfile(path):
        return ZipStore(path)
    raise ValueError(f"{path}: expected a directory or a .zip archive")


# --------------------------------------------------------------------------------------------------
# Parallel decoding: a process pool over chunks of files, each worker with its own store handle.

_worker_store: Store | None = None

# Below this many files per worker, starting processes costs more than it saves.
MIN_FILES_PER_WORKER = 512


def _init_worker(store: Store) -> None:
    global _worker_store
    _worker_store = store


def _run_chunk(args: tuple[Callable[[Store, Sequence[str]], list[Any]], Sequence[str]]) -> list[Any]:
    fn, names = args
    assert _worker_store is not None
    return fn(_worker_store, names)


def read_image(
    store: Store, name: str, mode: str, max_pixels: int = DEFAULT_MAX_PIXELS, min_short: float | None = None
) -> Image.Image:
    """Read one member of a store and decode it (`decode_image`); any failure is a BadImageError."""
    try:
        data = store.read(name)
    except OSError as err:
        raise BadImageError(f"cannot read ({err})") from err
    return decode_image(io.BytesIO(data), mode, max_pixels, min_short)


def decode_names(store: Store, names: Sequence[str], mode: str, max_pixels: int) -> list[np.ndarray | str]:
    """Decode each file into a uint8 (H, W, C) array, or the reason it failed (a str)."""
    out: list[np.ndarray | str] = []
    for name in names:
        try:
            out.append(image_to_array(read_image(store, name, mode, max_pixels)))
        except BadImageError as err:
            out.append(str(err))
    return out


def probe_names(store: Store, names: Sequence[str], max_pixels: int) -> list[tuple[int, int] | str]:
    """Read each file's header only: its (width, height), or the reason it is unreadable (a str)."""
    out: list[tuple[int, int] | str] = []
    for name in names:
        try:
            with store.open(name) as f, open_image(f, max_pixels) as im:
                out.append(im.size)
        except (BadImageError, OSError, zipfile.BadZipFile, KeyError) as err:
            out.append(str(err))
    return out


def map_files(
    fn: Callable[[Store, Sequence[str]], list[Any]], store: Store, names: Sequence[str], workers: int
) -> list[Any]:
    """`fn(store, names)` (e.g. a partial of `decode_names`) over all names, in order, in chunks over
    up to `workers` processes."""
    workers = min(workers, len(names) // MIN_FILES_PER_WORKER)
    if workers <= 1:
        return fn(store, names)
    chunk = max(64, min(2048, len(names) // (8 * workers)))
    tasks = [(fn, names[i : i + chunk]) for i in range(0, len(names), chunk)]
    # fork: the workers need only Pillow and numpy, and spawn would re-import torch in each.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    out: list[Any] = []
    with multiprocessing.get_context(method).Pool(
        workers, initializer=_init_worker, initargs=(store,)
    ) as pool:
        for result in pool.imap(_run_chunk, tasks):
            out.extend(result)
    return out
