"""Which files of a split belong to which class: the ImageNet folder layout and Tiny ImageNet's.

Both read a `decode` store and may sit under one top folder, as zips often do. Errors name the path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from rectifiers.decode import Store, is_image_name

_log = logging.getLogger(__name__)


@dataclass
class Listing:
    """A split's files (relative names in the store), their labels, the class names, and files that
    an annotation lists but the store lacks."""

    names: list[str]
    targets: list[int]
    classes: list[str]
    skipped: list[str]


# The folders a split is read from, in order of preference (`val` falls back to `test/` and back).
_SPLIT_DIRS = {"train": ("train",), "val": ("val", "test"), "test": ("test", "val")}


def _find_root(dirs: set[str], marker: str) -> str | None:
    """The prefix ("" or "top/") under which the directory `marker` lies, None where there is none."""
    if marker in dirs:
        return ""
    tops = sorted({d.split("/", 1)[0] for d in dirs})
    return next((f"{top}/" for top in tops if f"{top}/{marker}" in dirs), None)


def _by_class(
    store: Store, by_class: dict[str, list[str]], index: dict[str, int], folder: Callable[[str], str]
) -> tuple[list[str], list[int]]:
    """The images of each class in turn, sorted by name, and their labels; a class without images is
    an error naming its `folder`."""
    names: list[str] = []
    targets: list[int] = []
    for cls, images in by_class.items():
        if not images:
            raise ValueError(f"{store.describe(folder(cls))}: empty class folder (no image files)")
        names += sorted(images)
        targets += [index[cls]] * len(images)
    return names, targets


def split_folder(dirs: set[str], split: str) -> tuple[str, str] | None:
    """(prefix, folder) that `folder_listing` reads `split` from, of a store's directories; None if none."""
    found = [(root, d) for d in _SPLIT_DIRS[split] if (root := _find_root(dirs, d)) is not None]
    return found[0] if found else None


def folder_listing(store: Store, split: str) -> Listing:
    files, dirs = store.listing()
    found = split_folder(dirs, split)
    if found is None:
        want = " or ".join(f"{d}/" for d in _SPLIT_DIRS[split])
        raise ValueError(f"{store.describe('')}: no {want} folder for the {split!r} split (ImageNet layout)")
    root, split_dir = found
    base = f"{root}{split_dir}"

    def class_dirs(folder: str) -> list[str]:
        return sorted(
            d[len(folder) + 1 :]
            for d in dirs
            if d.startswith(folder + "/") and "/" not in d[len(folder) + 1 :]
        )

    classes = class_dirs(f"{root}train") if f"{root}train" in dirs else class_dirs(base)
    here = class_dirs(base)
    if not here:
        raise ValueError(f"{store.describe(base)}: no class folders")
    unknown = sorted(set(here) - set(classes))
    if unknown:
        raise ValueError(f"{store.describe(base + '/' + unknown[0])}: class folder not present in train/")
    index = {c: i for i, c in enumerate(classes)}
    by_class: dict[str, list[str]] = {c: [] for c in here}
    for name in files:
        if name.startswith(base + "/") and is_image_name(name):
            cls = name[len(base) + 1 :].split("/", 1)[0]
            if cls in by_class:
                by_class[cls].append(name)
    names, targets = _by_class(store, by_class, index, lambda cls: f"{base}/{cls}")
    return Listing(names, targets, classes, [])


def tinyimagenet_listing(store: Store, split: str) -> Listing:
    files, dirs = store.listing()
    root = _find_root(dirs, "train")
    if root is None:
        raise ValueError(f"{store.describe('')}: no train/ folder (Tiny ImageNet layout)")
    wnids = sorted(
        d.split("/")[-1]
        for d in dirs
        if d.startswith(f"{root}train/") and d.count("/") == root.count("/") + 1
    )
    if not wnids:
        raise ValueError(f"{store.describe(root + 'train')}: no class folders")
    classes = _tinyimagenet_names(store, root, wnids, set(files))
    index = {w: i for i, w in enumerate(wnids)}
    names: list[str] = []
    targets: list[int] = []
    skipped: list[str] = []
    if split == "train":
        by_class: dict[str, list[str]] = {w: [] for w in wnids}
        for name in files:
            parts = name[len(root) :].split("/")
            if len(parts) == 4 and parts[0] == "train" and parts[2] == "images" and is_image_name(name):
                by_class[parts[1]].append(name)
        names, targets = _by_class(store, by_class, index, lambda w: f"{root}train/{w}/images")
    else:
        ann = f"{root}val/val_annotations.txt"
        if ann not in files:
            raise ValueError(f"{store.describe(ann)}: missing (the Tiny ImageNet val labels)")
        present = set(files)
        for lineno, line in enumerate(store.read(ann).decode("utf-8", "replace").splitlines(), 1):
            fields = line.split("\t")
            if not line.strip():
                continue
            if len(fields) < 2 or fields[1] not in index:
                raise ValueError(
                    f"{store.describe(ann)}:{lineno}: expected 'file<TAB>wnid' with a wnid of train/, "
                    f"got {line[:80]!r}"
                )
            name = f"{root}val/images/{fields[0]}"
            if name in present:
                names.append(name)
                targets.append(index[fields[1]])
            else:
                skipped.append(store.describe(name))
                _log.info("%s: listed in %s but missing", store.describe(name), ann)
        if not names:
            raise ValueError(f"{store.describe(root + 'val/images')}: no images for the {split!r} split")
    return Listing(names, targets, classes, skipped)


def _tinyimagenet_names(store: Store, root: str, wnids: list[str], files: set[str]) -> list[str]:
    """Readable class names: the first synonym in words.txt (the wnid where absent or ambiguous)."""
    words = f"{root}words.txt"
    if words not in files:
        return list(wnids)
    table = {}
    for line in store.read(words).decode("utf-8", "replace").splitlines():
        wnid, _, text = line.partition("\t")
        table[wnid.strip()] = text.split(",")[0].strip()
    names = [table.get(w) or w for w in wnids]
    return [f"{n} ({w})" if names.count(n) > 1 else n for n, w in zip(names, wnids, strict=True)]
