"""Opening and decoding a generated folder of mixed-size JPEGs: listing time, decode+augment images/s.

Makes `--images` JPEGs in a temporary folder (10 classes; shorter sides 160-320 px, aspects 0.75-1.33,
like a resized ImageNet subset; smooth random content, quality 90), then measures on one core:

- listing: `open_dataset` of the folder with an empty cache (every header read), and again (the
  listing cached on disk: no header read, no stat per file);
- decode + augment images/s of one process (a DataLoader worker's work per image): the training crop
  (`TrainTransform.prepare_image`) and the eval view (`EvalTransform.prepare_image`), each with Pillow's
  JPEG draft mode (decode reduced by 2/4/8 while the shorter side stays >= the size it is resized to,
  as the loader does) and without it (full decode).

    python benchmarks/bench_decode.py [--images 1000] [--sizes 224:256-512:256,64:72-96:72]
"""

from __future__ import annotations

import argparse
import functools
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rectifiers.data import FileDataset, open_dataset
from rectifiers.transforms import EvalTransform, TrainTransform


def make_folder(root: Path, n: int, seed: int = 0, split: str = "train") -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        short = int(rng.integers(160, 321))
        aspect = float(rng.uniform(0.75, 1.33))
        w, h = (round(short * aspect), short) if aspect >= 1 else (short, round(short / aspect))
        grid = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        im = Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)
        folder = root / split / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{i}.jpg", quality=90)


def train_crop(ds: FileDataset, i: int, draft: bool, train: TrainTransform, rows: list[dict]) -> None:
    im, _ = ds.load(i, min_short=rows[i]["scale"] if draft else None)
    train.prepare_image(im, rows[i])


def eval_crop(ds: FileDataset, i: int, draft: bool, view: EvalTransform) -> None:
    im, _ = ds.load(i, min_short=view.resize if draft else None)
    view.prepare_image(im)


def images_per_s(ds: FileDataset, work: Callable[..., None], draft: bool, seconds: float = 3.0) -> float:
    """Images decoded and viewed per second by this process, for about `seconds`."""
    order = list(range(len(ds)))
    random.Random(0).shuffle(order)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        work(ds, order[done % len(order)], draft)
        done += 1
    return done / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument(
        "--sizes",
        default="224:256-512:256,64:72-96:72",
        help="crop:s_min-s_max:eval_resize, comma-separated (default: ImageNet's, and a small preset's)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "photos", Path(tmp) / "cache"
        make_folder(root, args.images)
        opened = []
        for _ in range(2):
            t0 = time.perf_counter()
            ds = open_dataset(f"folder:{root}", "train", cache_dir=cache, workers=1, memory_budget=0)
            opened.append(time.perf_counter() - t0)
        assert isinstance(ds, FileDataset)
        print(f"{len(ds):,} JPEGs, shorter sides 160-320, aspects 0.75-1.33; one process, one thread")
        print(f"listing: first open {opened[0]:.2f} s (headers read), second open {opened[1]:.3f} s (cached)")
        for spec in args.sizes.split(","):
            crop_text, scales, resize = spec.split(":")
            crop = int(crop_text)
            s_min, s_max = (int(v) for v in scales.split("-"))
            train = TrainTransform(crop, (s_min, s_max), pca_std=0)
            table = train.sample_params(len(ds), torch.Generator().manual_seed(0))
            rows = [
                {"scale": int(s), "offset": o, "flip": bool(f)}
                for s, o, f in zip(
                    table["scale"].tolist(), table["offset"].tolist(), table["flip"].tolist(), strict=True
                )
            ]
            view = EvalTransform(int(resize), crop)
            works = (
                ("train crop", functools.partial(train_crop, train=train, rows=rows)),
                ("eval view", functools.partial(eval_crop, view=view)),
            )
            for name, work in works:
                full = images_per_s(ds, work, draft=False)
                drafted = images_per_s(ds, work, draft=True)
                print(
                    f"crop {crop}, {name:10s} (s {scales if name == 'train crop' else resize}): "
                    f"full decode {full:6.0f} images/s, draft {drafted:6.0f} images/s ({drafted / full:.2f}x)"
                )


if __name__ == "__main__":
    main()
