"""A small folder of a user's own photos, generated: 2 classes, 20 train / 8 val images each, half
of them 40x50 and half 64x48 px, in the layout the README's "Train on your own images" shows.
The classes are named like the README's (cats, dogs); what tells them apart is drawn: a disc on a warm
background for "cats", a band across a cool one for "dogs"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZES = ((40, 50), (64, 48))  # (width, height)
COUNTS = {"train": 20, "val": 8}


def _photo(kind: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A noisy background with one shape of a contrasting colour (as photos of two things differ in
    colour and in shape); brightness, positions and sizes vary."""
    w, h = size
    warm, cool = (200, 110, 60), (60, 110, 200)
    background = np.array(warm if kind == "cats" else cool) + rng.integers(-50, 50, 3)
    pixels = np.clip(background + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(pixels)
    draw = ImageDraw.Draw(im)
    colour = tuple(int(c) for c in (background + 128 + rng.integers(-40, 40, 3)) % 256)
    if kind == "cats":
        r = rng.uniform(0.2, 0.3) * min(w, h)
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        thick = rng.uniform(0.15, 0.25) * h
        y = rng.uniform(0, h - thick)
        draw.rectangle((0, y, w, y + thick), fill=colour)
    return im


def make_photo_folder(root: Path, seed: int = 0) -> Path:
    """Write root/{train,val}/{cats,dogs}/*.jpg and return root."""
    rng = np.random.default_rng(seed)
    for split, count in COUNTS.items():
        for kind in ("cats", "dogs"):
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                _photo(kind, SIZES[i % 2], rng).save(folder / f"{i:03d}.jpg", quality=90)
    return root
