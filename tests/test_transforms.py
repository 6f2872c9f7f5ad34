"""Augmentation and test views: shapes, dtypes, ranges, flips, scales, crops, colour, normalization."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from rectifiers.data import open_dataset, pil_to_tensor
from rectifiers.layers import SpatialPyramidPool2d
from rectifiers.transforms import (
    IMAGENET_PCA_EIGVALS,
    IMAGENET_PCA_EIGVECS,
    EvalTransform,
    Normalize,
    TrainTransform,
    center_crop,
    eval_view,
    resize_shorter,
    rgb_pca,
    ten_crop,
)
from rectifiers.views import dense, feature_window


def _images(n: int = 8, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def _ramp(n: int, size: int, step: float = 4.0) -> torch.Tensor:
    """Images whose value grows by `step` per column (channel 0) and per row (channel 1)."""
    cols = torch.arange(size, dtype=torch.float32) * step
    x = torch.zeros(n, 3, size, size)
    x[:, 0] = cols
    x[:, 1] = cols[:, None]
    return x.round().to(torch.uint8)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# TrainTransform


def test_train_shape_dtype_and_range() -> None:
    x = _images(16, h=40, w=36)
    out = TrainTransform(32, (36, 48), pca_std=0.0)(x, _gen())
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 255  # bilinear blends stay within the pixel range
    gray = TrainTransform(24, (28, 30))(_images(4, c=1), _gen())
    assert gray.shape == (4, 1, 24, 24)
    coloured = TrainTransform(32, (36, 48), pca_std=0.5)(x, _gen())
    assert torch.isfinite(coloured).all() and not torch.allclose(coloured, out)


def _pil(x: torch.Tensor) -> Image.Image:
    """A PIL image of one uint8 (C, H, W) tensor."""
    a = x.permute(1, 2, 0).numpy()
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)


def _row(params: dict[str, torch.Tensor], i: int) -> dict[str, object]:
    """Sample i of a parameter table as the plain values the loader's workers get."""
    return {
        "scale": int(params["scale"][i]),
        "offset": params["offset"][i].tolist(),
        "flip": bool(params["flip"][i]),
    }


def test_a_chosen_crop_without_jitter_is_an_exact_integer_slice() -> None:
    x = _images(1, h=32, w=36)
    t = TrainTransform(28, (32, 32), flip=0.0, pca_std=0)
    params = t.sample_params(1, _gen())
    for uy, ux in ((0.0, 0.0), (0.3, 0.7), (0.999, 0.5)):
        params["offset"][0] = torch.tensor([uy, ux], dtype=params["offset"].dtype)
        top, left = int(uy * 5), int(ux * 9)  # 5 and 9 positions fit a 28-crop in 32 x 36
        expected = x[0, :, top : top + 28, left : left + 28]
        assert torch.equal(t.apply(x, params)[0], expected.float())
        assert torch.equal(t.prepare_image(_pil(x[0]), _row(params, 0)), expected)


def test_a_chosen_crop_with_jitter_is_a_slice_of_the_resized_image() -> None:
    x = _images(1, h=32, w=36)
    t = TrainTransform(28, (30, 40), flip=0.0, pca_std=0)
    params = t.sample_params(1, _gen())
    params["scale"][0], params["offset"][0] = 35, torch.tensor([0.5, 0.25], dtype=torch.float64)
    resized = resize_shorter(x, 35)  # 35 x 39 (39.375 rounded)
    assert resized.shape[-2:] == (35, 39)
    top, left = int(0.5 * 8), int(0.25 * 12)
    assert torch.equal(t.apply(x, params)[0], resized[0, :, top : top + 28, left : left + 28])


def test_flip_is_an_exact_mirror() -> None:
    x = _images(6)
    assert torch.equal(TrainTransform(32, (32, 32), flip=1.0, pca_std=0)(x), x.flip(-1).float())
    assert torch.equal(TrainTransform(32, (32, 32), flip=0.0, pca_std=0)(x), x.float())
    t = TrainTransform(28, (32, 32), flip=0.5, pca_std=0)
    params = t.sample_params(6, _gen())
    out = t.apply(x, params)
    flipped = params["flip"]
    assert 0 < int(flipped.sum()) < 6
    for i in range(6):
        top, left = (int(u * 5) for u in params["offset"][i].tolist())
        crop = x[i, :, top : top + 28, left : left + 28].float()
        assert torch.equal(out[i], crop.flip(-1) if flipped[i] else crop)


def test_crop_positions_are_uniform_over_the_integer_offsets() -> None:
    t = TrainTransform(28, (32, 32), flip=0.0, pca_std=0)
    offsets = t.sample_params(5000, _gen())["offset"]
    counts = torch.bincount((offsets[:, 1] * 5).long(), minlength=5)
    assert counts.numel() == 5 and counts.min() > 900  # about 1000 each of offsets 0..4


def test_flip_probability() -> None:
    params = TrainTransform(8, (8, 8), flip=0.5).sample_params(4000, _gen())
    assert 0.45 < params["flip"].float().mean() < 0.55


def test_scale_stays_in_range_and_spans_it() -> None:
    """On a ramp the output's per-pixel step is step * 32 / s: it reveals every sample's scale."""
    n, size, s_min, s_max = 64, 32, 32, 64
    t = TrainTransform(24, (s_min, s_max), flip=0.0, pca_std=0)
    params = t.sample_params(n, _gen(1))
    out = t.apply(_ramp(n, size), params)
    slope_x = (out[:, 0, :, 2:-2].diff(dim=-1)).mean(dim=(1, 2))
    slope_y = (out[:, 1, 2:-2, :].diff(dim=-2)).mean(dim=(1, 2))
    s_x, s_y = 4.0 * size / slope_x, 4.0 * size / slope_y
    scale = params["scale"].float()
    assert torch.allclose(s_x, scale, rtol=0.02) and torch.allclose(s_y, scale, rtol=0.02)
    assert s_x.min() >= s_min * 0.98 and s_x.max() <= s_max * 1.02
    assert s_x.min() < 36 and s_x.max() > 60  # the draws cover the range
    # The crop lies inside the resized image: its values stay inside the ramp's.
    assert out.min() >= 0 and out.max() <= 4.0 * (size - 1)


def test_flipped_ramp_descends() -> None:
    t = TrainTransform(16, (20, 20), flip=1.0, pca_std=0)
    out = t(_ramp(3, 20), _gen())
    assert (out[:, 0, :, 1:-1].diff(dim=-1) < 0).all()


# Pillow's and torch's antialiased bilinear filters of the same window agree to within about one grey
# level (Pillow also rounds to whole levels); a window one pixel off differs by tens of levels.
SAME_PIXELS = 1.5


def _shifted_row(row: dict[str, object], room: int) -> dict[str, object]:
    """The same sample with its crop moved one pixel right (left when it sits at the right edge)."""
    uy, ux = row["offset"]  # type: ignore[misc]
    left = min(int(ux * (room + 1)), room)
    left = left + 1 if left < room else left - 1
    return {**row, "offset": [uy, (left + 0.5) / (room + 1)]}


def test_downscaling_batch_is_antialiased_and_matches_the_per_image_path() -> None:
    x = torch.from_numpy(np.kron(np.indices((8, 8)).sum(0) % 2 * 255, np.ones((8, 8)))).to(torch.uint8)
    x = x.expand(4, 3, 64, 64).contiguous()  # 8-px checkerboard
    t = TrainTransform(16, (24, 32), flip=0.0, pca_std=0)
    params = t.sample_params(4, _gen(3))
    batched = t.apply(x, params)
    assert batched.shape == (4, 3, 16, 16)
    for i in range(4):
        row = _row(params, i)
        single = t.prepare_image(_pil(x[i]), row).float()
        assert (batched[i] - single).abs().max() <= SAME_PIXELS  # same window, filters round apart
        # The tolerance can fail: the same crop one pixel off is far outside it.
        shifted = t.prepare_image(_pil(x[i]), _shifted_row(row, int(params["scale"][i]) - 16)).float()
        assert (batched[i] - shifted).abs().max() > 10 * SAME_PIXELS


def test_shrinking_a_one_pixel_checkerboard_gives_flat_gray() -> None:
    """Antialiasing: without it, bilinear sampling of this pattern keeps a std of about 45."""
    x = torch.from_numpy(np.indices((64, 64)).sum(0) % 2 * 255).to(torch.uint8).expand(4, 3, 64, 64)
    out = TrainTransform(16, (24, 32), flip=0.0, pca_std=0)(x.contiguous(), _gen())
    assert out.std() < 5 and abs(out.mean() - 127.5) < 1


def test_per_image_path_matches_batched_path_when_upscaling() -> None:
    ds = open_dataset("fake:n=4,size=32")  # smooth class patterns plus noise
    t = TrainTransform(32, (36, 48), flip=0.5, pca_std=0)
    params = t.sample_params(4, _gen(5))
    batched = t.apply(ds.images, params)
    for i in range(4):
        single = t.prepare_image(_pil(ds.images[i]), _row(params, i))
        assert single.dtype == torch.uint8 and single.shape == (3, 32, 32)
        assert (batched[i] - single.float()).abs().max() <= SAME_PIXELS


def test_train_is_deterministic_given_the_generator() -> None:
    x = _images(5)
    t = TrainTransform(24, (28, 40))
    assert torch.equal(t(x, _gen(7)), t(x, _gen(7)))
    assert not torch.equal(t(x, _gen(7)), t(x, _gen(8)))
    params = t.sample_params(5, _gen(2))
    assert torch.equal(t.apply(x, params), t.apply(x, params))


def test_train_transform_validates() -> None:
    with pytest.raises(ValueError, match="crop <= s_min <= s_max"):
        TrainTransform(32, (28, 40))
    with pytest.raises(ValueError, match="crop <= s_min <= s_max"):
        TrainTransform(32, (40, 36))
    with pytest.raises(ValueError, match="probability"):
        TrainTransform(32, (32, 40), flip=1.5)
    with pytest.raises(ValueError, match="pca_std"):
        TrainTransform(32, (32, 40), pca_std=-1)
    with pytest.raises(ValueError, match=r"batch \(B, C, H, W\)"):
        TrainTransform(32, (32, 40))(_images(1)[0])


# --------------------------------------------------------------------------------------------------
# Colour


def test_pca_colour_altering_adds_one_colour_per_image() -> None:
    x = _images(4).float()
    colour = TrainTransform(32, (32, 32), pca_std=0.1)
    alpha = colour.sample_params(4, _gen())["alpha"]
    shift = colour.finish(x, {"alpha": alpha}) - x
    assert torch.allclose(shift, shift[:, :, :1, :1].expand_as(shift), atol=1e-4)  # constant per image
    expected = (alpha * IMAGENET_PCA_EIGVALS) @ IMAGENET_PCA_EIGVECS.T
    assert torch.allclose(shift[:, :, 0, 0], expected, atol=1e-4)
    assert not torch.allclose(expected, torch.zeros_like(expected))
    off = TrainTransform(32, (32, 32), pca_std=0.0)
    assert torch.equal(off.finish(x, off.sample_params(4, _gen())), x)
    gray = _images(2, c=1)
    assert torch.equal(colour.finish(gray, {"alpha": alpha[:2]}), gray.float())


def test_rgb_pca_of_a_data_set() -> None:
    vals, vecs = rgb_pca(open_dataset("fake:n=64,size=8"))
    assert vals.shape == (3,) and (vals[:-1] >= vals[1:]).all() and (vals > 0).all()
    assert torch.allclose(vecs.T @ vecs, torch.eye(3), atol=1e-4)
    with pytest.raises(ValueError, match="3-channel"):
        rgb_pca(open_dataset("fake:n=8,channels=1"))


def test_rgb_pca_of_large_jpegs_decodes_them_reduced(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos" / "train" / "a"
    folder.mkdir(parents=True)
    for i in range(6):
        grid = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(grid).resize((1000, 800), Image.Resampling.BICUBIC).save(
            folder / f"{i}.jpg", quality=90
        )
    ds = open_dataset(f"folder:{tmp_path / 'photos'}", "train", cache_dir=tmp_path / "cache", memory_budget=0)
    load = ds.load
    shorter: list[int] = []

    def recorded(i, min_short=None, substitute=True):
        im, label = load(i, min_short, substitute)
        shorter.append(min(im.size))
        return im, label

    monkeypatch.setattr(ds, "load", recorded)
    full_vals, full_vecs = rgb_pca(ds, min_short=None)
    assert shorter == [800] * 6
    shorter.clear()
    vals, vecs = rgb_pca(ds)  # by default down to the paper's smallest training scale, 256
    assert shorter == [400] * 6  # 800 / 2: reduced by 2, as 800 / 4 < 256
    # The colour covariance hardly depends on the scale the photo is decoded at.
    assert torch.allclose(vals, full_vals, rtol=0.03)
    assert torch.allclose((vecs * full_vecs).sum(0).abs(), torch.ones(3), atol=1e-3)


# --------------------------------------------------------------------------------------------------
# Views


def test_resize_shorter_shapes() -> None:
    assert resize_shorter(_images(2, h=20, w=40), 10).shape == (2, 3, 10, 20)
    assert resize_shorter(_images(2, h=45, w=30), 20).shape == (2, 3, 30, 20)
    x = _images(2, h=16, w=24)
    same = resize_shorter(x, 16)
    assert same.dtype == torch.float32 and torch.equal(same, x.float())


def test_center_crop_and_ten_crop_layout() -> None:
    x = _images(2, h=9, w=11)
    assert torch.equal(center_crop(x, 5), x[:, :, 2:7, 3:8])
    assert torch.equal(center_crop(x, (4, 6)), x[:, :, 2:6, 2:8])
    views = ten_crop(x, 5)
    assert views.shape == (10, 2, 3, 5, 5)
    manual = [x[..., :5, :5], x[..., :5, 6:], x[..., 4:, :5], x[..., 4:, 6:], x[..., 2:7, 3:8]]
    for k, m in enumerate(manual):
        assert torch.equal(views[k], m)
        assert torch.equal(views[k + 5], m.flip(-1))
    with pytest.raises(ValueError, match="larger than"):
        ten_crop(x, 10)


def test_eval_transform_is_deterministic_and_exact_at_native_size() -> None:
    x = _images(3, h=36, w=40)
    e = EvalTransform(32, 28)
    out = e(x)
    assert out.shape == (3, 3, 28, 28) and torch.equal(out, e(x))
    native = EvalTransform(36, 30)(x)
    assert torch.equal(native, x[:, :, 3:33, 5:35].float())
    with pytest.raises(ValueError, match="crop <= resize"):
        EvalTransform(28, 32)


@pytest.mark.parametrize("size", [(32, 32), (30, 40), (40, 30)])
def test_eval_per_image_path_equals_batched(size: tuple[int, int]) -> None:
    x = _images(3, h=size[0], w=size[1])
    e = EvalTransform(24, 20)
    batched = e(x)
    assert torch.equal(batched, eval_view(x, 24, 20))
    for i in range(3):
        assert torch.equal(e.prepare_image(_pil(x[i])), batched[i])


# --------------------------------------------------------------------------------------------------
# Normalize


def test_normalize_channel_stats_from_data() -> None:
    ds = open_dataset("fake:n=64,size=16")
    norm = Normalize.from_dataset(ds)
    assert norm.mode == "channel" and norm.mean.shape == (3, 1, 1)
    y = norm(ds.images.float())
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(y.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)


def test_normalize_pixel_mean_is_the_papers_mean_image() -> None:
    ds = open_dataset("fake:n=32,size=16")
    norm = Normalize.from_dataset(ds, mode="pixel", divide_std=False, scale=1.0)
    assert norm.mean.shape == (3, 16, 16) and norm.std is None
    mean_image = ds.images.double().mean(0).float()
    assert torch.allclose(norm(ds.images[:2].float()), ds.images[:2].float() - mean_image, atol=1e-3)
    smaller = Normalize.from_dataset(ds, mode="pixel", divide_std=False, scale=1.0, size=12)
    assert smaller.mean.shape == (3, 12, 12)
    expected = center_crop(resize_shorter(ds.images, 12), 12).double().mean(0).float()
    assert torch.allclose(smaller.mean, expected, atol=1e-3)  # resizing commutes with the mean
    assert norm(torch.zeros(1, 3, 24, 24)).shape == (1, 3, 24, 24)  # mean resized to other inputs


def test_normalize_state_dict_loads_with_weights_only(tmp_path) -> None:
    norm = Normalize([0.5, 0.4, 0.3], [0.2, 0.2, 0.25], scale=1 / 255)
    path = tmp_path / "n.pt"
    torch.save({"normalize": norm.state_dict()}, path)
    back = Normalize.from_state_dict(torch.load(path, weights_only=True)["normalize"])
    x = _images(2).float()
    assert torch.equal(back(x), norm(x))
    plain = Normalize.from_state_dict(Normalize(torch.zeros(1, 4, 4)).state_dict())
    assert plain.std is None and plain.mode == "pixel"
    with pytest.raises(ValueError, match="missing"):
        Normalize.from_state_dict({"mean": torch.zeros(3)})


def test_normalize_validates() -> None:
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize([0.0, 0.0, 0.0], [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="channels"):
        Normalize([0.0, 0.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="1 or 3"):
        Normalize(torch.zeros(2))
    with pytest.raises(ValueError, match="got 1"):
        Normalize([0.0, 0.0, 0.0])(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="'channel' or 'pixel'"):
        Normalize.from_dataset(open_dataset("fake:n=4"), mode="image")


def test_normalize_from_a_file_data_set(tmp_path) -> None:
    for i, size in enumerate([(10, 8), (12, 9)]):
        d = tmp_path / "train" / "a"
        d.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(np.full((size[1], size[0], 3), 40 * (i + 1), np.uint8)).save(buf, format="PNG")
        (d / f"{i}.png").write_bytes(buf.getvalue())
    ds = open_dataset(f"folder:{tmp_path}", cache=False)
    with pytest.raises(ValueError, match="needs `size`"):
        Normalize.from_dataset(ds, mode="pixel")
    pixel = Normalize.from_dataset(ds, mode="pixel", size=6, divide_std=False, scale=1.0)
    assert pixel.mean.shape == (3, 6, 6) and torch.allclose(pixel.mean, torch.full((3, 6, 6), 60.0))
    channel = Normalize.from_dataset(ds, scale=1.0)
    expected = (40 * 80 + 80 * 108) / (80 + 108)  # weighted by pixel count
    assert torch.allclose(channel.mean.flatten(), torch.full((3,), expected), atol=1e-3)


def test_file_set_statistics_are_computed_once_per_listing(tmp_path, monkeypatch) -> None:
    """Cached beside the listing: the second open (another DDP rank, the next run) decodes nothing."""
    from rectifiers.data import FileDataset

    for i, size in enumerate([(10, 8), (12, 9), (7, 11)]):
        d = tmp_path / "f" / "train" / "a"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size[1], size[0], 3), 30 * (i + 1), np.uint8)).save(d / f"{i}.png")
    spec, cache = f"folder:{tmp_path / 'f'}", tmp_path / "cache"
    first = Normalize.from_dataset(open_dataset(spec, cache_dir=cache), mode="pixel", size=6)
    channel = Normalize.from_dataset(open_dataset(spec, cache_dir=cache), divide_std=False)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(FileDataset, "load", fail)
    again = Normalize.from_dataset(open_dataset(spec, cache_dir=cache), mode="pixel", size=6)
    assert torch.equal(again.mean, first.mean) and torch.equal(again.std, first.std)
    assert again.scale == first.scale
    other = Normalize.from_dataset(open_dataset(spec, cache_dir=cache), divide_std=False)
    assert other.std is None and torch.equal(other.mean, channel.mean)
    with pytest.raises(AssertionError, match="decoded again"):  # other settings: computed anew
        Normalize.from_dataset(open_dataset(spec, cache_dir=cache), mode="pixel", size=5)


@pytest.mark.parametrize("pixel", [False, True])
def test_normalize_folds_a_per_image_shift(pixel: bool) -> None:
    mean = torch.rand(3, 6, 6) * 100 if pixel else torch.tensor([90.0, 100.0, 110.0])
    norm = Normalize(mean, [30.0, 40.0, 50.0], scale=0.5)
    x = _images(4, h=6, w=6).float()
    shift = torch.randn(4, 3, generator=_gen()) * 10
    assert torch.allclose(norm(x, shift), norm(x + shift[:, :, None, None]), atol=1e-5)


def test_train_transform_applies_normalize_last() -> None:
    x = _images(4)
    norm = Normalize([100.0, 110.0, 120.0], [50.0, 60.0, 70.0], scale=1.0)
    t_plain = TrainTransform(28, (32, 36), pca_std=0.1)
    t_norm = TrainTransform(28, (32, 36), pca_std=0.1, normalize=norm)
    assert torch.allclose(t_norm(x, _gen(4)), norm(t_plain(x, _gen(4))), atol=1e-5)


# --------------------------------------------------------------------------------------------------
# Every per-image path works for every image size: shorter sides 1..600, aspects 1:8..8:1, crops
# 28..224 (1-channel images keep the large ones cheap).

_PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _image_and_crop(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """(height, width, crop, scale >= crop)."""
    short = draw(st.integers(1, 600))
    aspect = draw(st.floats(1.0, 8.0))
    long = max(short, round(short * aspect))
    h, w = (short, long) if draw(st.booleans()) else (long, short)
    crop = draw(st.integers(28, 224))
    scale = draw(st.integers(crop, crop + 64))
    return h, w, crop, scale


def _gray(h: int, w: int) -> Image.Image:
    return Image.fromarray((np.arange(h * w, dtype=np.uint32).reshape(h, w) % 251).astype(np.uint8))


@given(
    size=_image_and_crop(), u=st.tuples(st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True))
)
@_PROPERTY
def test_every_image_size_gives_a_training_crop(
    size: tuple[int, int, int, int], u: tuple[float, float]
) -> None:
    h, w, crop, scale = size
    t = TrainTransform(crop, (scale, scale), flip=0.0, pca_std=0)
    im = _gray(h, w)
    out = t.prepare_image(im, {"scale": scale, "offset": list(u), "flip": True})
    assert out.shape == (1, crop, crop)
    params = t.sample_params(1, _gen())
    params["offset"][0] = torch.tensor(u, dtype=torch.float64)
    batched = t.apply(pil_to_tensor(im)[None], params)  # the in-memory path, same geometry
    assert batched.shape == (1, 1, crop, crop)


@given(size=_image_and_crop())
@_PROPERTY
def test_every_image_size_gives_an_eval_view(size: tuple[int, int, int, int]) -> None:
    h, w, crop, scale = size
    out = EvalTransform(scale, crop).prepare_image(_gray(h, w))
    assert out.shape == (1, crop, crop) and torch.isfinite(out).all()


class _OneImageFiles:
    """A file data set of one image, as `Normalize.from_dataset` reads file sets (`load`)."""

    num_channels = 1

    def __init__(self, im: Image.Image) -> None:
        self.im = im

    def __len__(self) -> int:
        return 1

    def load(self, i: int, min_short: float | None = None) -> tuple[Image.Image, int]:
        return self.im, 0


@given(size=_image_and_crop())
@_PROPERTY
def test_every_image_size_gives_a_normalization_sample(size: tuple[int, int, int, int]) -> None:
    h, w, crop, _ = size
    norm = Normalize.from_dataset(_OneImageFiles(_gray(h, w)), mode="pixel", size=crop, scale=1.0)
    assert norm.mean.shape == (1, crop, crop) and torch.isfinite(norm.mean).all()


class _PoolNet(torch.nn.Module):
    """The smallest model dense testing accepts: an 8x average pool as its conv part, SPP + fc head."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Sequential(SpatialPyramidPool2d((2, 1)), torch.nn.Linear(5, 3))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 8, ceil_mode=True)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@given(size=_image_and_crop())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_image_size_gives_dense_windows(size: tuple[int, int, int, int]) -> None:
    h, w, crop, scale = size
    model = _PoolNet().eval()
    image = pil_to_tensor(_gray(h, w))[None]
    window = feature_window(model, crop, 1)
    probs = dense(model, image, scale=scale, window=window, stride=2)
    assert probs.shape == (1, 3) and torch.allclose(probs.sum(), torch.tensor(1.0))
