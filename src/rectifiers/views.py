"""Test-time views of a batch: single view, AlexNet's 10 views, and the paper's dense multi-scale testing.

Every function takes a model in eval mode and a same-size batch of uint8 images (B, C, H, W) and
returns softmax probabilities (B, K) as float32; several views are combined by averaging their
probabilities. Nothing loops over views or windows in Python: all views of a batch go through the
model as one batch. Each is two steps, so that the pixel work can run per image in a data loader's
workers and the scoring on whole batches: `prepare_views` (resize and crop, float pixel values) and
`score_views` (normalize and score).

    single_view   `transforms.eval_view`: shorter side resized to `resize`, the central crop × crop
                  window (Table 2, 3), the same view as training-time validation.
    ten_view      the four corner crops and the center crop, each also flipped (Table 5); only the five
                  without `flip` (a model trained without mirrored images).
    dense         the paper's "multi-view testing on feature maps" (Sec. 3, after SPP-net [11] and the
                  dense evaluation of OverFeat / VGG): the conv layers run once on the whole image
                  resized to shorter side s; every window of the training crop's feature-map size
                  (14×14 for a 224 crop in model A) is cut from the last conv map with a strided view
                  (`Tensor.unfold`), pooled by the SPP layer and scored by the fc layers, all windows
                  as one batch; the same on the mirrored image; the scores of all windows are averaged.
                  For a `Net` the SPP of all windows comes from pooling the whole map once
                  (`window_pyramids`): the same values without copying every window.
    multi_scale   dense scores averaged over several scales (Table 4's "multi-scale": 256, 384, 480).

Dense testing needs the model to be split as `forward_features` (conv part, any input size) and
`forward_head` (SPP + fc, any map size), as `rectifiers.models.Net` is.

Normalization at other sizes. A `Normalize` with a per-pixel mean holds the mean image of the
training crop (crop × crop). Where the input has exactly that size (every single / 10-view crop, and
dense testing of a square image at s = crop) the mean image is subtracted as in training. Where it
does not (the whole resized image of dense testing), the mean image's per-channel average is
subtracted instead. Training itself subtracted the same mean image from crops taken at random
positions of randomly scaled images, so no pixel of the mean image belongs to a fixed place of the
image; stretching it over a larger or non-square image (what `Normalize` alone would do) would put
its structure at a place no training crop saw. A per-channel mean is used as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rectifiers.layers import SpatialPyramidPool2d
from rectifiers.models import Net
from rectifiers.transforms import Normalize, eval_view, resize_shorter, ten_crop, to_float

# Windows scored by one `forward_head` call in dense testing: bounds the copy the windows are gathered
# into (e.g. 1024 windows of model A's 512 × 14 × 14 map take 400 MB in float32).
MAX_WINDOWS = 1024


def normalize_input(x: Tensor, normalize: Normalize | None) -> Tensor:
    """Float32 input for the model: `normalize(x)`, with a per-pixel mean replaced by its per-channel
    average when `x` is not of the mean image's size (see the module docstring); `x` as float32
    pixel values when `normalize` is None."""
    if normalize is None:
        return to_float(x).contiguous()
    if normalize.mode == "pixel" and tuple(normalize.mean.shape[-2:]) != tuple(x.shape[-2:]):
        normalize = Normalize(normalize.mean.mean(dim=(1, 2)), normalize.std, normalize.scale)
    return normalize(x)


def softmax_scores(model: nn.Module, x: Tensor) -> Tensor:
    """softmax(model(x)) in float32, (N, K)."""
    return F.softmax(model(x).float(), dim=1)


def _check(model: nn.Module, images: Tensor) -> None:
    if model.training:
        raise ValueError("the model is in training mode (dropout active): call model.eval() first")
    if images.ndim != 4:
        raise ValueError(f"expected a batch of images (B, C, H, W), got shape {tuple(images.shape)}")


VIEWS = ("single", "ten", "dense")


def prepare_views(images: Tensor, views: str, *, scale: int, crop: int, flip: bool = True) -> Tensor:
    """The float32 pixels a view scores, before normalization, of uint8 (B, C, H, W) images:

    single: (B, C, crop, crop), `eval_view` at shorter side `scale`;
    ten:    (V, B, C, crop, crop), the `ten_crop` views of the image at shorter side `scale`
            (V = 10, or 5 without `flip`);
    dense:  (B, C, H', W'), the image at shorter side `scale` (its windows are cut on the conv map).
    """
    if views not in VIEWS:
        raise ValueError(f"unknown views {views!r}; choose one of {', '.join(VIEWS)}")
    if views == "dense":
        if scale < 1:
            raise ValueError(f"scale must be positive, got {scale}")
        return resize_shorter(images, scale)
    if not 1 <= crop <= scale:
        raise ValueError(f"need 1 <= crop <= resize, got crop={crop}, resize={scale}")
    if views == "single":
        return eval_view(images, scale, crop)
    return ten_crop(resize_shorter(images, scale), crop, flip=flip)


@torch.no_grad()
def score_views(
    model: nn.Module,
    prepared: Tensor,
    views: str,
    *,
    normalize: Normalize | None = None,
    window: int | Sequence[int] = 0,
    stride: int = 1,
    flip: bool = True,
    max_windows: int = MAX_WINDOWS,
    pool_on_map: bool = True,
) -> Tensor:
    """Probabilities (B, K) of views made by `prepare_views` (the arguments after `normalize` are
    dense testing's, see `dense`)."""
    if model.training:
        raise ValueError("the model is in training mode (dropout active): call model.eval() first")
    if views == "single":
        return softmax_scores(model, normalize_input(prepared, normalize))
    if views == "ten":
        v, b = prepared.shape[:2]
        x = normalize_input(prepared.reshape(v * b, *prepared.shape[2:]), normalize)
        return softmax_scores(model, x).view(v, b, -1).mean(dim=0)
    return _dense_scores(model, prepared, window, stride, normalize, flip, max_windows, pool_on_map)


@torch.no_grad()
def single_view(
    model: nn.Module, images: Tensor, *, resize: int, crop: int, normalize: Normalize | None = None
) -> Tensor:
    """Scores of the center crop: shorter side resized to `resize`, the central crop × crop window.

    uint8 (B, C, H, W) → probabilities (B, K).
    """
    _check(model, images)
    return score_views(
        model, prepare_views(images, "single", scale=resize, crop=crop), "single", normalize=normalize
    )


@torch.no_grad()
def ten_view(
    model: nn.Module,
    images: Tensor,
    *,
    resize: int,
    crop: int,
    normalize: Normalize | None = None,
    flip: bool = True,
) -> Tensor:
    """AlexNet's 10-view testing (Table 5): the four corner crops and the center crop of the image
    resized to shorter side `resize`, each with its horizontal flip (not with `flip=False`); the
    probabilities averaged.

    uint8 (B, C, H, W) → probabilities (B, K). One forward pass of 10·B (5·B) crops.
    """
    _check(model, images)
    views = prepare_views(images, "ten", scale=resize, crop=crop, flip=flip)
    return score_views(model, views, "ten", normalize=normalize)


def feature_window(model: nn.Module, crop: int, in_chans: int) -> tuple[int, int]:
    """(h, w) of the last conv map for a crop × crop input: the window of dense testing.

    Uses `model.feature_size` when the model has it (`rectifiers.models.Net`), else one forward pass of
    a zero image through `forward_features`.
    """
    size = getattr(model, "feature_size", None)
    if callable(size):
        h, w = size(crop)
        return int(h), int(w)
    _require_split(model)
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    with torch.no_grad():
        fmap = model.forward_features(torch.zeros(1, in_chans, crop, crop, device=device))
    return int(fmap.shape[-2]), int(fmap.shape[-1])


def _require_split(model: nn.Module) -> None:
    if not (
        callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None))
    ):
        raise ValueError(
            f"dense testing needs a model with forward_features and forward_head, got {type(model).__name__}"
        )


def _bins(length: int, n: int) -> list[tuple[int, int]]:
    """(start, size) of the n adaptive-pooling bins along a side of `length`: bin i covers
    floor(i·L/n) .. ceil((i+1)·L/n), the rule of `SpatialPyramidPool2d` (adaptive_max_pool2d)."""
    return [((i * length) // n, -(-(i + 1) * length // n) - (i * length) // n) for i in range(n)]


def window_pyramids(fmap: Tensor, levels: Sequence[int], window: tuple[int, int], stride: int) -> Tensor:
    """SPP features of every window of `fmap`, from max pooling the whole map once.

    Equal to `SpatialPyramidPool2d(levels)` applied to each (wh, ww) window at positions 0, stride,
    2·stride, ... (max is exact, so the values are identical), in the order of `Tensor.unfold`:
    (N, C, h, w) → (N·nh·nw, C·Σn²). A bin of a window at (p, q) is the max over a kh × kw rectangle
    at (p + y0, q + x0), where (y0, kh) and (x0, kw) depend only on the bin; so each distinct kh × kw
    max pooling (stride 1, separable: rows, then columns) runs once over the map and every window
    reads its bins from it with a strided slice. Overlapping windows thus share their pooling instead
    of each copying and pooling its own pixels (SPP-net's "pooling on the feature maps").
    """
    n, c, h, w = fmap.shape
    wh, ww = window
    nh, nw = (h - wh) // stride + 1, (w - ww) // stride + 1
    rows: dict[int, Tensor] = {}
    pooled: dict[tuple[int, int], Tensor] = {}
    out = []
    for level in levels:
        bins = []
        for y0, kh in _bins(wh, level):
            for x0, kw in _bins(ww, level):
                if (kh, kw) not in pooled:
                    if kh not in rows:
                        rows[kh] = F.max_pool2d(fmap, (kh, 1), stride=1)  # (N, C, h - kh + 1, w)
                    pooled[kh, kw] = F.max_pool2d(rows[kh], (1, kw), stride=1)
                p = pooled[kh, kw]
                bins.append(
                    p[
                        :,
                        :,
                        y0 : y0 + stride * (nh - 1) + 1 : stride,
                        x0 : x0 + stride * (nw - 1) + 1 : stride,
                    ]
                )
        grid = torch.stack(bins, dim=2)  # (N, C, n², nh, nw), bins row-major as SPP flattens them
        out.append(grid.permute(0, 3, 4, 1, 2).reshape(n * nh * nw, c * level * level))
    return torch.cat(out, dim=1)


def _pyramid_head(model: nn.Module) -> tuple[SpatialPyramidPool2d, nn.Module] | None:
    """(SPP layer, the layers after it) of a `Net` whose head starts with SPP; else None."""
    head = getattr(model, "head", None)
    if (
        isinstance(model, Net)
        and type(model).forward_head is Net.forward_head
        and isinstance(head, nn.Sequential)
        and len(head) > 0
        and isinstance(head[0], SpatialPyramidPool2d)
    ):
        return head[0], head[1:]
    return None


@torch.no_grad()
def dense(
    model: nn.Module,
    images: Tensor,
    *,
    scale: int,
    window: int | Sequence[int],
    stride: int = 1,
    normalize: Normalize | None = None,
    flip: bool = True,
    max_windows: int = MAX_WINDOWS,
    pool_on_map: bool = True,
) -> Tensor:
    """The paper's dense testing at one scale (Sec. 3): conv layers once on the whole image, SPP + fc
    on every window of the last conv map, mirrored image too, probabilities averaged over windows.

    Args:
        images: uint8 (B, C, H, W); resized so that the shorter side is `scale`.
        window: (h, w) (or one side) of a window on the last conv map: the map size of a training crop,
            `feature_window(model, crop, C)` (model A: 14×14 for 224 px). A map smaller than the window
            along a side gives windows of the map's size along it (one window when s <= crop).
        stride: step between windows on the conv map (in map pixels). Windows start at 0, stride,
            2·stride, ... as long as they fit; with stride > 1 a remainder at the bottom/right edge is
            seen only by the windows that overlap it (and, mirrored, by the flipped image's).
        flip: also score the horizontally flipped image (the paper does).
        max_windows: windows per call of the fc layers (bounds memory; whole images per call).
        pool_on_map: for a `Net` (head = SPP, then fc layers), compute every window's SPP from one
            pooling of the whole map (`window_pyramids`, identical values, several times faster).
            Otherwise, and for any other model, the windows are cut with `Tensor.unfold` and each goes
            through `forward_head`.

    Returns probabilities (B, K): the mean of softmax(fc(SPP(window))) over the windows of both images.
    """
    _check(model, images)
    if scale < 1:
        raise ValueError(f"scale must be positive, got {scale}")
    resized = prepare_views(images, "dense", scale=scale, crop=0)
    return _dense_scores(model, resized, window, stride, normalize, flip, max_windows, pool_on_map)


def _dense_scores(
    model: nn.Module,
    resized: Tensor,
    window: int | Sequence[int],
    stride: int,
    normalize: Normalize | None,
    flip: bool,
    max_windows: int,
    pool_on_map: bool,
) -> Tensor:
    """`dense` on images already resized to its scale (float32 (B, C, H, W))."""
    _require_split(model)
    wh, ww = (window, window) if isinstance(window, int) else tuple(window)
    if wh < 1 or ww < 1:
        raise ValueError(f"window sides must be positive, got {(wh, ww)}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    b = resized.shape[0]
    x = normalize_input(resized, normalize)
    if flip:
        x = torch.cat([x, x.flip(-1)])  # (V·B, C, H, W), V = 2 views: image, mirror
    fmap = model.forward_features(x)  # (V·B, D, h, w)
    n, d, h, w = fmap.shape
    wh, ww = min(wh, h), min(ww, w)
    per_image = ((h - wh) // stride + 1) * ((w - ww) // stride + 1)
    split = _pyramid_head(model) if pool_on_map else None
    step = max(1, max_windows // per_image)  # whole images per call of the fc layers
    scores = []
    for lo in range(0, n, step):
        chunk = fmap[lo : lo + step]
        if split is not None:
            spp, fc = split
            logits = fc(window_pyramids(chunk, spp.levels, (wh, ww), stride))
        else:
            windows = chunk.unfold(2, wh, stride).unfold(3, ww, stride)  # (b, D, nh, nw, wh, ww), a view
            # gathered channels-last (…, wh, ww, D): max pooling runs about 4x faster on it on CPU
            block = windows.permute(0, 2, 3, 4, 5, 1).reshape(-1, wh, ww, d)  # (b·nh·nw, wh, ww, D)
            logits = model.forward_head(block.permute(0, 3, 1, 2))
        probs = F.softmax(logits.float(), dim=1)
        scores.append(probs.view(-1, per_image, probs.shape[1]).mean(dim=1))
    out = torch.cat(scores)  # (V·B, K)
    # both views have the same number of windows: the mean over views is the mean over all windows
    return out.view(-1, b, out.shape[1]).mean(dim=0)


@torch.no_grad()
def multi_scale(
    model: nn.Module,
    images: Tensor,
    *,
    scales: Sequence[int],
    window: int | Sequence[int],
    stride: int = 1,
    normalize: Normalize | None = None,
    flip: bool = True,
    max_windows: int = MAX_WINDOWS,
    pool_on_map: bool = True,
) -> Tensor:
    """Dense scores averaged over `scales` (each scale weighted equally, as SPP-net [11] combines
    scales): the paper's multi-scale testing of Table 4 (scales 256, 384, 480)."""
    if not scales:
        raise ValueError("multi_scale needs at least one scale")
    total = sum(
        dense(
            model,
            images,
            scale=s,
            window=window,
            stride=stride,
            normalize=normalize,
            flip=flip,
            max_windows=max_windows,
            pool_on_map=pool_on_map,
        )
        for s in scales
    )
    return total / len(scales)
