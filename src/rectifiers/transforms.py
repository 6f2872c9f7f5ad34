"""The paper's training augmentation and the evaluation views, on whole uint8 batches (torch ops only).

Training (paper Sec. 3, after VGG and AlexNet): shorter side resized to a random s in
[s_min, s_max] (paper: 256-512), a random crop x crop window (224), a horizontal flip for half of the
samples, AlexNet's PCA colour altering, then the mean subtracted.

Pixels are float32 in 0..255 until a `Normalize` maps x -> (x * scale - mean) / std (the paper:
`scale=1`, a per-pixel mean, no std; the small presets: `scale=1/255`, per-channel mean and std).
Nothing clamps the PCA shift, as in AlexNet.

Geometry on whole pixels: one resize to shorter side s (`resized_size` rounds the longer side the
same in every path), then a crop at an integer offset (`crop_start`), so without scale jitter a
training crop is an exact slice, like every evaluation crop. Files take the same geometry with
Pillow, resampling only the window's source box.

`eval_view` is the one evaluation view (validation, evaluate, predict, normalization statistics).
`TrainTransform.sample_params` draws every random number up front and `apply` is deterministic, so
the loader's per-epoch table makes augmentation independent of batch size and ranks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from rectifiers.data import cached_statistics, pil_to_tensor

# AlexNet's PCA of ImageNet RGB pixels (Krizhevsky et al. 2012, the constants fb.resnet.torch
# published): eigenvalues of the covariance of RGB values in [0, 1], times 255 because the transforms
# work in 0..255 pixel units; eigenvectors are the columns.
IMAGENET_PCA_EIGVALS = torch.tensor([0.2175, 0.0188, 0.0045]) * 255.0
IMAGENET_PCA_EIGVECS = torch.tensor(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ]
)

_Size = int | tuple[int, int]


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(x.shape)}")


def to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype != torch.float32 else x


# --------------------------------------------------------------------------------------------------
# Reusable view functions


def resized_size(h: int, w: int, short: int) -> tuple[int, int]:
    """(height, width) of an h x w image resized so that its shorter side is `short`; the longer side
    keeps the aspect ratio, rounded to the nearest pixel (never below `short`)."""
    if min(h, w, short) < 1:
        raise ValueError(f"sizes must be positive, got image {h}x{w} and shorter side {short}")
    if h <= w:
        return short, max(short, round(w * short / h))
    return max(short, round(h * short / w)), short


def crop_start(u: float, room: int) -> int:
    """The integer offset of a crop with `room` pixels to spare, from u in [0, 1): each of the
    room + 1 positions equally likely for uniform u."""
    if room < 0:
        raise ValueError(f"the crop is {-room} pixel(s) larger than the image")
    return min(int(u * (room + 1)), room)


def resize_shorter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (B, C, H, W) so that its shorter side is `size` (`resized_size`), bilinear with
    antialiasing. Returns float32 pixel values (an exact copy when the size does not change)."""
    _check_batch(x)
    h, w = x.shape[-2:]
    new = resized_size(h, w, size)
    if new == (h, w):
        return to_float(x)
    return F.interpolate(to_float(x), size=new, mode="bilinear", antialias=True, align_corners=False)


def center_crop(x: torch.Tensor, size: _Size) -> torch.Tensor:
    """The central size x size window of (..., H, W) (top-left at ((H - h) // 2, (W - w) // 2)); a view."""
    h, w = (size, size) if isinstance(size, int) else size
    H, W = x.shape[-2:]
    if h < 1 or w < 1:
        raise ValueError(f"sizes must be positive, got {size}")
    if h > H or w > W:
        raise ValueError(f"crop {h}x{w} is larger than the {H}x{W} image")
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top : top + h, left : left + w]


def eval_view(x: torch.Tensor, resize: int, crop: int) -> torch.Tensor:
    """Shorter side resized to `resize`, then the central crop x crop window: float32 (B, C, crop,
    crop). Every evaluation path uses it, so validation and single-view errors see the same pixels."""
    if not 1 <= crop <= resize:
        raise ValueError(f"need 1 <= crop <= resize, got crop={crop}, resize={resize}")
    return center_crop(resize_shorter(x, resize), crop).contiguous()


def ten_crop(x: torch.Tensor, size: _Size, flip: bool = True) -> torch.Tensor:
    """AlexNet's 10 views of (B, C, H, W): (10, B, C, h, w), the four corner crops and the center
    crop, then the same five flipped (only the five with `flip=False`)."""
    _check_batch(x)
    center = center_crop(x, size)  # refuses a crop larger than the image
    (h, w), (H, W) = center.shape[-2:], x.shape[-2:]
    corners = [x[..., :h, :w], x[..., :h, W - w :], x[..., H - h :, :w], x[..., H - h :, W - w :]]
    five = torch.stack([*corners, center])
    return torch.cat([five, five.flip(-1)]) if flip else five


def gather_crops(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """The size x size window of every image of (B, C, H, W) at integer (top[b], left[b]): exact
    pixel copies, (B, C, size, size). A slice per image: faster than one advanced-indexing gather."""
    _check_batch(x)
    starts = zip(top.tolist(), left.tolist(), strict=True)
    return torch.stack([x[b, :, t : t + size, u : u + size] for b, (t, u) in enumerate(starts)])


def rgb_pca(
    ds: Any, max_samples: int = 10_000, seed: int = 0, min_short: int | None = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigvals, eigvecs) of a data set's RGB covariance in `IMAGENET_PCA_*`'s convention, from up to
    `max_samples` images. JPEGs decode reduced down to shorter side `min_short` (None: full size),
    since colour covariance hardly depends on scale and the reduced decode is faster."""
    if ds.num_channels != 3:
        raise ValueError("PCA colour statistics need a 3-channel data set")
    _, cov, _ = _pixel_moments(ds, _sample_batches(ds, max_samples, seed, size=None, min_short=min_short))
    vals, vecs = torch.linalg.eigh(cov / 255.0**2)
    order = vals.argsort(descending=True)
    return (vals[order] * 255.0).float(), vecs[:, order].float()


def _pixel_moments(
    ds: Any, batches: Iterator[torch.Tensor], mean_image: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Float64 statistics of a data set's image batches: the mean pixel (C,), the pixels' covariance
    (C, C) and, with `mean_image` (every batch the same size then), the mean image (C, H, W)."""
    c = ds.num_channels
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, c, dtype=torch.float64)
    image_sum: torch.Tensor | None = None
    pixels = images = 0
    for batch in batches:
        x = batch.double()
        flat = x.transpose(0, 1).reshape(c, -1)
        s1 += flat.sum(1)
        s2 += flat @ flat.T
        pixels += flat.shape[1]
        images += x.shape[0]
        if mean_image:
            image_sum = x.sum(0) if image_sum is None else image_sum + x.sum(0)
    if images == 0:
        raise ValueError(f"{getattr(ds, 'source', 'data set')}: no images to compute statistics from")
    mean = s1 / pixels
    return mean, s2 / pixels - torch.outer(mean, mean), None if image_sum is None else image_sum / images


def _sample_batches(
    ds: Any, max_samples: int | None, seed: int, size: int | None, min_short: int | None = None
) -> Iterator[torch.Tensor]:
    """Batches of `ds` (all images, or `max_samples` chosen with `seed`): uint8, or the `eval_view`
    at `size` x `size`. A file decodes reduced down to shorter side `size` (else `min_short`)."""
    n = len(ds)
    take = n if max_samples is None or max_samples >= n else max_samples
    g = torch.Generator().manual_seed(seed)
    order = torch.arange(n) if take == n else torch.randperm(n, generator=g)[:take]
    images = getattr(ds, "images", None)
    if images is not None:
        for start in range(0, take, 1024):
            chunk = images[order[start : start + 1024]]
            yield chunk if size is None else eval_view(chunk, size, size)
        return
    for i in order.tolist():
        im, _ = ds.load(i, min_short=min_short if size is None else size)
        x = pil_to_tensor(im)[None]
        yield x if size is None else eval_view(x, size, size)


# --------------------------------------------------------------------------------------------------
# Normalization

# What `Normalize.from_dataset` subtracts: one mean per channel, or the mean image (the paper's).
MEAN_MODES = ("channel", "pixel")


class Normalize:
    """y = (x * scale - mean) / std on float pixel batches (B, C, H, W).

    `mean` is per channel (C, 1, 1) or per pixel (C, H, W), the paper's (Sec. 3, with `std=None`),
    resized bilinearly to an input of another size. `std` is per channel; both in units of `x * scale`.
    """

    def __init__(
        self,
        mean: torch.Tensor | Sequence[float],
        std: torch.Tensor | Sequence[float] | None = None,
        scale: float = 1.0,
    ):
        mean_t = torch.as_tensor(mean, dtype=torch.float32).detach().clone()
        if mean_t.ndim == 1:
            mean_t = mean_t[:, None, None]
        if mean_t.ndim != 3 or mean_t.shape[0] not in (1, 3):
            raise ValueError(
                f"mean must have shape (C,), (C, 1, 1) or (C, H, W), C = 1 or 3; got {tuple(mean_t.shape)}"
            )
        std_t = None
        if std is not None:
            std_t = torch.as_tensor(std, dtype=torch.float32).detach().clone().reshape(-1, 1, 1)
            if std_t.shape[0] != mean_t.shape[0]:
                raise ValueError(f"std has {std_t.shape[0]} channels, mean {mean_t.shape[0]}")
            if not bool((std_t > 0).all()):
                raise ValueError(f"std must be positive, got {std_t.flatten().tolist()}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale}")
        self.mean = mean_t
        self.std = std_t
        self.scale = float(scale)
        self._cache: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def mode(self) -> str:
        return "channel" if self.mean.shape[-2:] == (1, 1) else "pixel"

    def __repr__(self) -> str:
        std = "None" if self.std is None else [round(v, 4) for v in self.std.flatten().tolist()]
        return (
            f"Normalize(mode={self.mode!r}, mean {tuple(self.mean.shape)}, std={std}, scale={self.scale:.6g})"
        )

    @classmethod
    def from_dataset(
        cls,
        ds: Any,
        mode: str = "channel",
        divide_std: bool = True,
        size: int | None = None,
        scale: float = 1 / 255,
        max_samples: int | None = None,
        seed: int = 0,
    ) -> Normalize:
        """Statistics of a data set's images: the mean image at `size` x `size` (`eval_view`s;
        default: the in-memory images' own size) or one mean per channel, and `std` when
        `divide_std`. File sets use 10,000 images by default, in-memory sets all."""
        if mode not in MEAN_MODES:
            raise ValueError(f"mode must be {' or '.join(map(repr, MEAN_MODES))}, got {mode!r}")
        images = getattr(ds, "images", None)
        if mode == "pixel" and size is None:
            if images is None:
                raise ValueError("a per-pixel mean of a file data set needs `size`")
            if images.shape[2] != images.shape[3]:
                size = min(images.shape[2], images.shape[3])
        if images is None and max_samples is None:
            max_samples = 10_000
        # A file set decodes thousands of images for this: cached per listing, shared by DDP ranks.
        key = [mode, divide_std, size, scale, max_samples, seed]
        measure = functools.partial(cls._measure, ds, mode, divide_std, size, scale, max_samples, seed)
        return cls.from_state_dict(cached_statistics(ds, key, lambda: measure().state_dict()))

    @classmethod
    def _measure(
        cls,
        ds: Any,
        mode: str,
        divide_std: bool,
        size: int | None,
        scale: float,
        max_samples: int | None,
        seed: int,
    ) -> Normalize:
        images = getattr(ds, "images", None)
        # A resize and a center crop are linear maps, so the mean of resized images is the resized
        # mean: in memory, sum at the stored size and resize the mean image once.
        batches = _sample_batches(ds, max_samples, seed, size if images is None else None)
        channel_mean, cov, mean_image = _pixel_moments(ds, batches, mean_image=mode == "pixel")
        std = torch.sqrt(cov.diagonal().clamp_min(1e-12)) * scale if divide_std else None
        if mean_image is not None:
            mean = mean_image.float()
            if size is not None and tuple(mean.shape[-2:]) != (size, size):
                mean = eval_view(mean[None], size, size)[0]
            mean = mean * scale
        else:
            mean = (channel_mean * scale).float()
        return cls(mean, std, scale)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mul, add) of y = x · mul + add: mul = scale / std per channel (C, 1, 1), add = -mean / std
        per channel or, for a mean image, per pixel (C, H, W)."""
        inv = torch.ones_like(self.mean[:, :1, :1]) if self.std is None else 1.0 / self.std
        return self.scale * inv, -self.mean * inv

    def _affine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`affine()` for `x`'s device and dtype, the mean image resized to `x`'s size (cached)."""
        key = (x.device, x.dtype, *x.shape[-2:]) if self.mode == "pixel" else (x.device, x.dtype)
        cached = self._cache.get(key)
        if cached is None:
            mul, add = self.affine()
            if self.mode == "pixel" and tuple(add.shape[-2:]) != tuple(x.shape[-2:]):
                size = tuple(x.shape[-2:])
                add = F.interpolate(
                    add[None], size=size, mode="bilinear", align_corners=False, antialias=True
                )[0]
            cached = self._cache[key] = (mul.to(x.device, x.dtype), add.to(x.device, x.dtype))
        return cached

    def __call__(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Normalize x; `shift` (B, C), a per-image pixel offset added first (the PCA colour shift),
        is folded into the same pass."""
        _check_batch(x)
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"Normalize for {self.mean.shape[0]} channel(s) got {x.shape[1]}")
        x = to_float(x)
        mul, add = self._affine(x)
        if shift is not None:
            # (x + shift) * mul + add = x * mul + (add + shift * mul)
            add = add + shift.to(x.device, x.dtype)[:, :, None, None] * mul
        return torch.addcmul(add, x, mul)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only, so checkpoints load with `torch.load(weights_only=True)`."""
        return {
            "mean": self.mean.clone(),
            "std": None if self.std is None else self.std.clone(),
            "scale": self.scale,
        }

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> Normalize:
        missing = {"mean", "std", "scale"} - set(d)
        if missing:
            raise ValueError(f"Normalize state is missing {sorted(missing)}")
        return cls(d["mean"], d["std"], float(d["scale"]))


# --------------------------------------------------------------------------------------------------
# Training and evaluation transforms


class TrainTransform:
    """The paper's augmentation: uint8 (B, C, H, W) -> float32 (B, C, crop, crop).

    scale: (s_min, s_max), the integer shorter side drawn per sample (paper: (256, 512), crop 224).
    flip: probability of a horizontal flip.
    pca_std: std of AlexNet's colour-altering coefficients (0: off; skipped for 1 channel).
    eigvals/eigvecs: the PCA basis (default AlexNet's; `rgb_pca(ds)` computes a data set's own).
    """

    def __init__(
        self,
        crop: int,
        scale: tuple[int, int],
        flip: float = 0.5,
        pca_std: float = 0.1,
        normalize: Normalize | None = None,
        eigvals: torch.Tensor | None = None,
        eigvecs: torch.Tensor | None = None,
    ) -> None:
        if crop < 1:
            raise ValueError(f"crop must be >= 1, got {crop}")
        s_min, s_max = scale
        if not crop <= s_min <= s_max:
            raise ValueError(
                f"scale must satisfy crop <= s_min <= s_max, got crop={crop}, scale={tuple(scale)}"
            )
        if not 0.0 <= flip <= 1.0:
            raise ValueError(f"flip is a probability in [0, 1], got {flip}")
        if pca_std < 0:
            raise ValueError(f"pca_std must be >= 0, got {pca_std}")
        self.crop = int(crop)
        self.scale = (int(s_min), int(s_max))
        self.flip = float(flip)
        self.pca_std = float(pca_std)
        self.normalize = normalize
        self.eigvals = (
            IMAGENET_PCA_EIGVALS if eigvals is None else torch.as_tensor(eigvals, dtype=torch.float32)
        )
        self.eigvecs = (
            IMAGENET_PCA_EIGVECS if eigvecs is None else torch.as_tensor(eigvecs, dtype=torch.float32)
        )

    def __repr__(self) -> str:
        return (
            f"TrainTransform(crop={self.crop}, scale={self.scale}, flip={self.flip}, pca_std={self.pca_std}, "
            f"normalize={self.normalize!r})"
        )

    def sample_params(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Random parameters of n samples: `scale` (n,) int; `offset` (n, 2) float64 fractions (y, x)
        for `crop_start` once the image size is known; `flip` (n,) bool; PCA `alpha` (n, 3)."""
        u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
        alpha = torch.randn(n, 3, generator=generator) * self.pca_std
        s_min, s_max = self.scale
        return {
            "scale": s_min + (u[:, 0] * (s_max - s_min + 1)).long().clamp(max=s_max - s_min),
            "offset": u[:, 1:3],
            "flip": u[:, 3] < self.flip,
            "alpha": alpha,
        }

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_batch(x)
        return self.apply(x, self.sample_params(x.shape[0], generator))

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Deterministic augmentation of a same-size batch with given per-sample parameters."""
        return self.finish(self.geometry(x, params), params)

    def geometry(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scale, crop and flip: float32 (B, C, crop, crop); one resize per distinct scale."""
        _check_batch(x)
        B, C, H, W = x.shape
        c = self.crop
        scales = params["scale"].long()
        out = torch.empty(B, C, c, c, dtype=torch.float32, device=x.device)
        for s in scales.unique().tolist():
            pick = (scales == s).nonzero().flatten()
            rh, rw = resized_size(H, W, s)
            resized = resize_shorter(x[pick.to(x.device)], s)
            u = params["offset"][pick].double()
            top = (u[:, 0] * (rh - c + 1)).long().clamp(max=rh - c)  # crop_start, vectorised
            left = (u[:, 1] * (rw - c + 1)).long().clamp(max=rw - c)
            out[pick.to(x.device)] = gather_crops(resized, top, left, c)
        flip = params["flip"].to(x.device)
        return torch.where(flip[:, None, None, None], out.flip(-1), out)

    def finish(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Colour altering and normalization of cropped float (or uint8) pixels: AlexNet's (B, 3) colour
        offsets sum_i alpha_i lambda_i p_i (AlexNet Sec. 4.1), one per image; 1-channel images get none."""
        x = to_float(x)
        shift = None
        if x.shape[1] == 3 and self.pca_std > 0:
            shift = (params["alpha"] * self.eigvals) @ self.eigvecs.T
        if self.normalize is not None:
            return self.normalize(x, shift)
        return x if shift is None else x + shift.to(x.device, x.dtype)[:, :, None, None]

    def prepare_image(self, im: Image.Image, params: dict[str, Any]) -> torch.Tensor:
        """`geometry` for one decoded image (loader workers): uint8 (C, crop, crop); `params` is one
        row of `sample_params` as plain values. At the image's own scale the crop is a plain slice,
        otherwise Pillow resamples only the window's source box."""
        w, h = im.size
        rh, rw = resized_size(h, w, int(params["scale"]))
        c, (u, v) = self.crop, params["offset"]
        top, left = crop_start(u, rh - c), crop_start(v, rw - c)
        if (rh, rw) == (h, w):
            out = im.crop((left, top, left + c, top + c))
        else:
            # Each coordinate is one correctly rounded division of integers, so (left + crop) <= rw
            # gives a right edge <= w: the box never leaves the image (no negative or overlong box).
            box = (left * w / rw, top * h / rh, (left + c) * w / rw, (top + c) * h / rh)
            out = im.resize((c, c), Image.Resampling.BILINEAR, box=box)
        return pil_to_tensor(out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if params["flip"] else out)


class EvalTransform:
    """Single-view testing: shorter side resized to `resize`, center `crop`, normalized.
    uint8 (B, C, H, W) -> float32 (B, C, crop, crop)."""

    def __init__(self, resize: int, crop: int, normalize: Normalize | None = None) -> None:
        if not 1 <= crop <= resize:
            raise ValueError(f"need 1 <= crop <= resize, got crop={crop}, resize={resize}")
        self.resize = int(resize)
        self.crop = int(crop)
        self.normalize = normalize

    def __repr__(self) -> str:
        return f"EvalTransform(resize={self.resize}, crop={self.crop}, normalize={self.normalize!r})"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(eval_view(x, self.resize, self.crop))

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """Normalization of cropped pixels (a contiguous float32 batch)."""
        return self.normalize(x) if self.normalize is not None else to_float(x).contiguous()

    def prepare_image(self, im: Image.Image) -> torch.Tensor:
        """The eval view of one decoded image (DataLoader workers): float32 (C, crop, crop)."""
        return eval_view(pil_to_tensor(im)[None], self.resize, self.crop)[0]
