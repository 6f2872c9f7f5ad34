"""An image folder full of bad files. Every decodable file is converted (grayscale, CMYK,
16-bit, palette with and without transparency, RGBA), every other one (random bytes, zero-length,
truncated JPEG and PNG, huge-dimension headers) is skipped and counted, and `rectifiers train` on the
folder completes.

Each good image is one uniform colour, different per file, so the decoded set can be checked colour by
colour without re-implementing the conversion.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import fault_kit as kit
import numpy as np
import pytest
import torch
from PIL import Image

from rectifiers.data import open_dataset

SIZE = 20


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height 8-bit grayscale pixels and holds one row: a decompression bomb's
    header (Pillow reads the size from IHDR before decoding anything)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _good_files(size: int) -> dict[str, tuple[bytes, tuple[int, int, int]]]:
    """name -> (file bytes, the RGB colour it must decode to)."""
    palette = Image.new("P", (size, size), 0)
    palette.putpalette([10, 200, 30] + [0, 0, 0] * 255)
    transparent = Image.new("P", (size, size), 0)
    transparent.putpalette([90, 60, 250] + [0, 0, 0] * 255)
    sixteen = Image.fromarray(np.full((size, size), 0x8000, np.uint16))  # mode I;16: keeps the top 8 bits
    return {
        "rgb.png": (_encode(Image.new("RGB", (size, size), (200, 10, 10)), "PNG"), (200, 10, 10)),
        "rgb.jpg": (
            _encode(Image.new("RGB", (size, size), (10, 10, 200)), "JPEG", quality=95),
            (10, 10, 200),
        ),
        "gray.png": (_encode(Image.new("L", (size, size), 77), "PNG"), (77, 77, 77)),
        "cmyk.jpg": (
            _encode(Image.new("CMYK", (size, size), (0, 255, 255, 0)), "JPEG", quality=95),
            (255, 0, 0),
        ),
        "sixteen.png": (_encode(sixteen, "PNG"), (128, 128, 128)),
        "palette.png": (_encode(palette, "PNG"), (10, 200, 30)),
        "palette_alpha.png": (_encode(transparent, "PNG", transparency=1), (90, 60, 250)),
        "rgba.png": (_encode(Image.new("RGBA", (size, size), (30, 140, 90, 255)), "PNG"), (30, 140, 90)),
    }


def _bad_files(size: int) -> dict[str, bytes]:
    jpeg = _encode(Image.effect_noise((size, size), 60).convert("RGB"), "JPEG")
    png = _encode(Image.effect_noise((size, size), 60), "PNG")
    return {
        "random.jpg": np.random.default_rng(0).bytes(3000),
        "random.png": np.random.default_rng(1).bytes(500),
        "empty.png": b"",
        "empty.jpg": b"",
        # cut inside the compressed data, so the header is whole and only decoding finds the damage
        "truncated.jpg": jpeg[: jpeg.index(b"\xff\xda") + 40],
        "truncated.png": png[: png.index(b"IDAT") + 40],
        "bomb_pillow.png": _png_header(100_000, 100_000),  # above twice Pillow's own limit
        "bomb_warn.png": _png_header(11_000, 11_000),  # above Pillow's limit (its warning is an error here)
        "bomb_ours.png": _png_header(8_300, 8_300),  # above rectifiers' 2^26-pixel limit only
    }


def _make_folder(root: Path, sizes: tuple[int, ...] = (SIZE,)) -> tuple[int, int, set[tuple[int, int, int]]]:
    """train/ and val/ with classes a and b, each holding every good and bad file (good ones in each
    size of `sizes`). Returns the number of good and bad files per split and the good colours."""
    good, bad = 0, 0
    colours = set()
    for split in ("train", "val"):
        for cls in ("a", "b"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for size in sizes:
                for name, (data, colour) in _good_files(size).items():
                    (folder / f"{size}_{name}").write_bytes(data)
                    colours.add(colour)
                    good += split == "train"
            for name, data in _bad_files(SIZE).items():
                (folder / name).write_bytes(data)
                bad += split == "train"
    return good, bad, colours


def _close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 3) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))  # JPEG is lossy by a few levels


def test_bad_files_are_skipped_and_counted_good_ones_converted(tmp_path: Path):
    good, bad, colours = _make_folder(tmp_path / "images")
    with pytest.warns(UserWarning, match=f"skipped {bad} file"):
        ds = open_dataset(f"folder:{tmp_path / 'images'}", "train", cache=False, workers=0)
    kit.TALLY["faults injected"] += bad
    assert len(ds) == good and len(ds.skipped) == bad
    assert sorted(Path(p).name for p in ds.skipped) == sorted(2 * list(_bad_files(SIZE)))
    assert ds.images.shape == (good, 3, SIZE, SIZE) and ds.images.dtype == torch.uint8
    assert all(bool((im == im[:, :1, :1]).all()) for im in ds.images), "an image is no longer uniform"
    decoded = {tuple(int(v) for v in im[:, 0, 0]) for im in ds.images}
    for colour in decoded:
        assert any(_close(colour, c) for c in colours), f"{colour} is none of the colours written"
    for colour in colours:
        assert any(_close(colour, d) for d in decoded), f"no image decoded to {colour}: {sorted(decoded)}"


def test_mixed_sizes_decode_lazily_and_count_late_failures(tmp_path: Path):
    good, bad, _ = _make_folder(tmp_path / "images", sizes=(SIZE, SIZE + 7))
    with pytest.warns(UserWarning, match="skipped"):
        ds = open_dataset(f"folder:{tmp_path / 'images'}", "train", cache=False, workers=0)
    # Headers were read for every file: only the ones a header check can tell are skipped yet.
    truncated = 2 * 2  # truncated.jpg and truncated.png in each class: their headers are fine
    assert len(ds.skipped) == bad - truncated and len(ds) == good + truncated
    with pytest.warns(UserWarning, match="using the next image"):
        images = [ds[i][0] for i in range(len(ds))]
    assert len(ds.skipped) == bad  # the late failures are counted too
    kit.TALLY["faults injected"] += bad
    assert all(im.dtype == torch.uint8 and im.shape[0] == 3 for im in images)


@pytest.mark.parametrize(
    ("sizes", "memory"),
    [((SIZE,), "in memory"), pytest.param((SIZE, SIZE + 7), "from files", marks=pytest.mark.slow)],
)
def test_training_on_a_folder_of_bad_files_completes(tmp_path: Path, sizes: tuple[int, ...], memory: str):
    _, bad, _ = _make_folder(tmp_path / "images", sizes=sizes)
    overrides = {
        "data.spec": f"folder:{tmp_path / 'images'}",
        "data.crop": "16",
        "data.scale_min": "16",
        "data.scale_max": "18",
        "data.eval_resize": "16",
        "train.batch_size": "8",
        "train.epochs": "1",
        "train.quiet": "false",
    }
    done = kit.cli(kit.train_args(tmp_path / "run", **overrides), tmp_path)
    kit.TALLY["faults injected"] += 2 * bad
    assert done.returncode == 0, done.stderr[-3000:]
    header_bad = bad - 4 if memory == "from files" else bad  # truncated files fail later, when decoded
    assert f"{2 * header_bad} undecodable file(s) skipped" in done.stderr, done.stderr[-3000:]
    assert len(kit.metric_lines(tmp_path / "run")) == 1
    kit.TALLY["runs recovered"] += 1
