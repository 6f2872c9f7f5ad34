"""CIFAR-10 as its authors distribute it: `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/`.

From https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 python version"): `data_batch_1..5`
are `train` (50,000), `test_batch` is `val` (10,000). Each file is a pickle of a dict whose b"data"
rows are images as 1024 red, 1024 green, 1024 blue values.

A pickle can run any code while it loads, so an unpickler that builds numpy arrays and nothing else
reads them; anything else is refused with an error naming the file. The archive is never extracted.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
ENV = "RECTIFIERS_CIFAR10"  # where a bare `cifar10` spec finds the data
SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "val": ["test_batch"]}

# What an ndarray's pickle calls: numpy's _reconstruct (under the module name of the numpy that wrote
# the file: numpy.core in the official files, numpy._core since numpy 2), ndarray and dtype; and
# _codecs.encode, which Python 3 writes for bytes in protocol 2 (a copy re-pickled by Python 3).
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a CIFAR-10 batch")
        return found


def resolve_path(arg: str) -> Path:
    """The path of a `cifar10[:PATH]` spec: PATH, else $RECTIFIERS_CIFAR10; an error says where to get it."""
    text = arg or os.environ.get(ENV, "")
    if not text:
        raise ValueError(
            f"the cifar10 data spec needs the data: set {ENV}=/path/to/{ARCHIVE} (or its extracted "
            f"{FOLDER}/), or pass --data cifar10:PATH; get the python version from {URL}"
        )
    path = Path(text).expanduser()
    if not path.exists():
        raise ValueError(f"{path}: not found; expected {ARCHIVE} or its extracted {FOLDER}/ (from {URL})")
    return path


def read_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,), class names) of `split` ("train" or "val")."""
    names = [*SPLIT_FILES[split], "batches.meta"]
    files = _read_archive(path, names) if path.is_file() else _read_folder(path, names)
    meta = _load(files["batches.meta"], f"{path}: batches.meta")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[b"label_names"]]
    images, labels = [], []
    for name in SPLIT_FILES[split]:
        batch = _load(files[name], f"{path}: {name}")
        data = np.asarray(batch[b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(
                f"{path}: {name}: expected uint8 rows of 3072 values, got {data.dtype} {data.shape}"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels), classes


def _load(raw: bytes, name: str) -> dict[bytes, Any]:
    try:
        content = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"{name}: not a CIFAR-10 batch file: {err}") from None
    if not isinstance(content, dict):
        raise ValueError(f"{name}: not a CIFAR-10 batch file (a {type(content).__name__}, not a dict)")
    return content


def _read_folder(path: Path, names: list[str]) -> dict[str, bytes]:
    folder = path if (path / "batches.meta").is_file() else path / FOLDER
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise ValueError(f"{folder}: missing {', '.join(missing)} (expected the extracted {FOLDER}/)")
    return {n: (folder / n).read_bytes() for n in names}


def _read_archive(path: Path, names: list[str]) -> dict[str, bytes]:
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [n for n in names if n not in members]
            if missing:
                raise ValueError(f"{path}: missing {', '.join(missing)} (expected {ARCHIVE} from {URL})")
            return {n: tar.extractfile(members[n]).read() for n in names}  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable {ARCHIVE}: {err}") from None
