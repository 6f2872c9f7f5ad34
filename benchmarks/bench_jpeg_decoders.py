"""JPEG decode speed of Pillow (what `rectifiers.decode` uses) against `simplejpeg` (libjpeg-turbo via
Cython, from PyPI; not a dependency of this project: install it anywhere on `--path`), on the same
generated mixed-size JPEGs as `bench_decode.py` (shorter sides 160-320, aspects 0.75-1.33), read from
memory so that only the decode is timed, one process, one thread:

- full decode to an RGB uint8 array;
- reduced decode with the shorter side kept >= `--min-short` (Pillow's draft mode; simplejpeg's
  `min_width`/`min_height`, both DCT scaling), as the loader decodes for a smaller target;

and how far the two decoders' pixels are apart (full decode).

    pip install --target /tmp/sj --no-deps simplejpeg
    python benchmarks/bench_jpeg_decoders.py --path /tmp/sj [--images 1000] [--min-short 112]
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench_decode import make_folder
from rectifiers.transforms import TrainTransform


def pillow_image(data: bytes, min_short: int | None) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    if min_short is not None:
        ratio = min_short / min(im.size)
        im.draft("RGB", (math.ceil(im.width * ratio), math.ceil(im.height * ratio)))
    return im.convert("RGB")


def pillow(data: bytes, min_short: int | None) -> np.ndarray:
    return np.asarray(pillow_image(data, min_short))


def rate(decode: Callable[[bytes], np.ndarray], files: list[bytes], seconds: float = 3.0) -> float:
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        decode(files[done % len(files)])
        done += 1
    return done / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", default=None, help="a folder holding simplejpeg (pip install --target)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--min-short", type=int, default=112)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.path:
        sys.path.insert(0, args.path)
    import simplejpeg

    def turbo(data: bytes, min_short: int | None) -> np.ndarray:
        if min_short is None:
            return simplejpeg.decode_jpeg(data, colorspace="RGB")
        w, h = simplejpeg.decode_jpeg_header(data)[:2]
        ratio = min_short / min(w, h)
        return simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_width=math.ceil(w * ratio), min_height=math.ceil(h * ratio)
        )

    with tempfile.TemporaryDirectory() as tmp:
        make_folder(Path(tmp), args.images)
        files = [p.read_bytes() for p in sorted(Path(tmp).rglob("*.jpg"))]
    print(f"{len(files):,} JPEGs, shorter sides 160-320; simplejpeg {simplejpeg.__version__}; one thread")
    diffs = [np.abs(pillow(f, None).astype(np.int16) - turbo(f, None)) for f in files[:200]]
    print(
        f"pixels, full decode: max |Pillow - simplejpeg| {max(int(d.max()) for d in diffs)}, "
        f"mean {np.mean([d.mean() for d in diffs]):.4f}"
    )
    for min_short in (None, args.min_short):
        a = rate(lambda f, m=min_short: pillow(f, m), files)
        b = rate(lambda f, m=min_short: turbo(f, m), files)
        what = "full decode" if min_short is None else f"reduced, shorter side >= {min_short}"
        print(f"{what:42s}: Pillow {a:6.0f} images/s, simplejpeg {b:6.0f} images/s ({b / a:.2f}x)")
    # A loader worker's whole work per image: the decode, then the training crop's resize and crop
    # (of the decoded PIL image; simplejpeg's array wrapped in one, as a decode path using it would).
    train = TrainTransform(224, (256, 512), pca_std=0)
    table = train.sample_params(len(files), torch.Generator().manual_seed(0))
    rows = [
        {"scale": int(s), "offset": o, "flip": bool(f)}
        for s, o, f in zip(
            table["scale"].tolist(), table["offset"].tolist(), table["flip"].tolist(), strict=True
        )
    ]
    index = {id(f): i for i, f in enumerate(files)}
    a = rate(lambda f: train.prepare_image(pillow_image(f, None), rows[index[id(f)]]), files)
    b = rate(lambda f: train.prepare_image(Image.fromarray(turbo(f, None)), rows[index[id(f)]]), files)
    what = "decode + 224 training crop (s 256-512)"
    print(f"{what:42s}: Pillow {a:6.0f} images/s, simplejpeg {b:6.0f} images/s ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
