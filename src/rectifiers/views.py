"""Test-time views of a batch: single view, AlexNet's 10 views, and the paper's dense multi-scale testing.

Each function takes a model in eval mode and a same-size uint8 batch (B, C, H, W) and returns
float32 softmax probabilities (B, K), averaged over views; all views of a batch go through the model
as one batch. Each is `prepare_views` (pixel work, which can run in loader workers) then
`score_views` (normalize and score).

    single_view   `transforms.eval_view`, the same view as training-time validation (Table 2, 3).
    ten_view      four corner crops and the center crop, each also flipped (Table 5).
    dense         Sec. 3's "multi-view testing on feature maps" (after SPP-net [11]): the conv layers
                  run once on the image at shorter side s, every window of the training crop's map
                  size is pooled by SPP and scored by the fc layers, on the mirrored image too;
                  averaged over several scales, the multi-scale testing of Table 4 (256, 384, 480).

Dense testing needs `forward_features` (any input size) and `forward_head` (any map size), as `Net`
has.

A per-pixel mean image is subtracted only from inputs of its own size; elsewhere (dense testing's
whole image) its per-channel average is. Training subtracted it from crops at random positions and
scales, so stretching it over a larger image would put its structure where no training crop saw it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rectifiers.layers import SpatialPyramidPool2d
from rectifiers.models import Net, model_device
from rectifiers.transforms import Normalize, eval_view, resize_shorter, ten_crop, to_float

# Windows scored by one `forward_head` call in dense testing: bounds the copy the windows are gathered
# into (e.g. 1024 windows of model A's 512 × 14 × 14 map take 400 MB in float32).
MAX_WINDOWS = 1024


def normalize_input(x: Tensor, normalize: Normalize | None) -> Tensor:
    """Float32 model input: `normalize(x)`, a per-pixel mean of another size than `x` replaced by its
    per-channel average (see the module docstring)."""
    if normalize is None:
        return to_float(x).contiguous()
    if normalize.mode == "pixel" and tuple(normalize.mean.shape[-2:]) != tuple(x.shape[-2:]):
        normalize = Normalize(normalize.mean.mean(dim=(1, 2)), normalize.std, normalize.scale)
    return normalize(x)


def softmax_scores(model: nn.Module, x: Tensor) -> Tensor:
    return F.softmax(model(x).float(), dim=1)


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
    """Probabilities (B, K) of views made by `prepare_views`, without autograd (the arguments after
    `normalize` are dense testing's, see `dense`)."""
    if model.training:
        raise ValueError("the model is in training mode (dropout active): call model.eval() first")
    if views == "single":
        return softmax_scores(model, normalize_input(prepared, normalize))
    if views == "ten":
        v, b = prepared.shape[:2]
        x = normalize_input(prepared.reshape(v * b, *prepared.shape[2:]), normalize)
        return softmax_scores(model, x).view(v, b, -1).mean(dim=0)
    return _dense_scores(model, prepared, window, stride, normalize, flip, max_windows, pool_on_map)


def single_view(
    model: nn.Module, images: Tensor, *, resize: int, crop: int, normalize: Normalize | None = None
) -> Tensor:
    """Probabilities (B, K) of the central crop × crop window at shorter side `resize`."""
    return score_views(
        model, prepare_views(images, "single", scale=resize, crop=crop), "single", normalize=normalize
    )


def ten_view(
    model: nn.Module,
    images: Tensor,
    *,
    resize: int,
    crop: int,
    normalize: Normalize | None = None,
    flip: bool = True,
) -> Tensor:
    """AlexNet's 10-view testing (Table 5) at shorter side `resize`: probabilities (B, K) averaged
    over the corner and center crops and their flips (not with `flip=False`)."""
    views = prepare_views(images, "ten", scale=resize, crop=crop, flip=flip)
    return score_views(model, views, "ten", normalize=normalize)


def feature_window(model: nn.Module, crop: int, in_chans: int) -> tuple[int, int]:
    """(h, w) of the last conv map for a crop × crop input: the window of dense testing
    (`model.feature_size` where it exists, else a forward pass of a zero image)."""
    size = getattr(model, "feature_size", None)
    if callable(size):
        h, w = size(crop)
        return int(h), int(w)
    _require_split(model)
    device = model_device(model)
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

    Identical to `SpatialPyramidPool2d(levels)` on each (wh, ww) window at strides of `stride`, in
    `Tensor.unfold`'s order: (N, C, h, w) → (N·nh·nw, C·Σn²). A bin's rectangle size (kh, kw) does
    not depend on the window, so each distinct kh × kw max pooling runs once over the map and every
    window reads its bins with a strided slice: overlapping windows share their pooling.
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


def dense(
    model: nn.Module,
    images: Tensor,
    *,
    scale: int | Sequence[int],
    window: int | Sequence[int],
    stride: int = 1,
    normalize: Normalize | None = None,
    flip: bool = True,
    max_windows: int = MAX_WINDOWS,
    pool_on_map: bool = True,
) -> Tensor:
    """The paper's dense testing (Sec. 3): conv layers once on the whole image, SPP + fc on every
    window of the last conv map, mirrored image too, probabilities averaged over windows.

    Args:
        images: uint8 (B, C, H, W); resized so that the shorter side is `scale`.
        scale: the shorter side, or several: the multi-scale testing of Table 4 (scales 256, 384,
            480), each scale weighted equally as SPP-net [11] combines scales.
        window: (h, w) (or one side) of a window on the last conv map: the map size of a training crop,
            `feature_window(model, crop, C)` (model A: 14×14 for 224 px). A map smaller than the window
            along a side gives windows of the map's size along it (one window when s <= crop).
        stride: step between windows on the conv map (in map pixels). Windows start at 0, stride,
            2·stride, ... as long as they fit; with stride > 1 a remainder at the bottom/right edge is
            seen only by the windows that overlap it (and, mirrored, by the flipped image's).
        flip: also score the horizontally flipped image (the paper does).
        max_windows: windows per call of the fc layers (bounds memory; whole images per call).
        pool_on_map: for a `Net`, every window's SPP from one pooling of the whole map
            (`window_pyramids`, identical values, faster); otherwise each window is cut with
            `Tensor.unfold` and goes through `forward_head`.

    Returns probabilities (B, K): the mean of softmax(fc(SPP(window))) over the windows of both images
    (and over the scales).
    """
    scales = [scale] if isinstance(scale, int) else list(scale)
    if not scales:
        raise ValueError("dense testing needs at least one scale")
    total = sum(
        score_views(
            model,
            prepare_views(images, "dense", scale=s, crop=0),
            "dense",
            normalize=normalize,
            window=window,
            stride=stride,
            flip=flip,
            max_windows=max_windows,
            pool_on_map=pool_on_map,
        )
        for s in scales
    )
    return total / len(scales)


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
            # gathered channels-last (…, wh, ww, D): CPU max pooling is faster on that layout
            block = windows.permute(0, 2, 3, 4, 5, 1).reshape(-1, wh, ww, d)  # (b·nh·nw, wh, ww, D)
            logits = model.forward_head(block.permute(0, 3, 1, 2))
        probs = F.softmax(logits.float(), dim=1)
        scores.append(probs.view(-1, per_image, probs.shape[1]).mean(dim=1))
    out = torch.cat(scores)  # (V·B, K)
    # both views have the same number of windows: the mean over views is the mean over all windows
    return out.view(-1, b, out.shape[1]).mean(dim=0)
