"""Evaluation: the view functions against explicit references, ensembles, metrics, CLI, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from helpers import free_port, tiny_overrides
from rectifiers.checkpoint.inference import load_member
from rectifiers.checkpoint.store import FORMAT, CheckpointError, save_checkpoint
from rectifiers.cli import main
from rectifiers.config import RunConfig, load_config
from rectifiers.data import FileDataset, open_dataset
from rectifiers.eval_results import format_results, load_scores, metrics_from_scores, write_results
from rectifiers.evaluate import EvalOptions, evaluate
from rectifiers.layers import SpatialPyramidPool2d
from rectifiers.models import create_model
from rectifiers.transforms import Normalize
from rectifiers.views import dense, feature_window, single_view, ten_view, window_pyramids

FAKE = "fake:n=64,val=21,size=16,classes=4,channels=1,seed=3"


@pytest.fixture(autouse=True)
def one_thread():
    # The tensors here are tiny: a second intra-op thread only adds waiting on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------ helpers


class ToyNet(nn.Module):
    """conv → ReLU as features, global average pool → linear as head. With `symmetric`, every kernel
    is mirror-symmetric, so conv(flip x) = flip(conv x) and the pooled scores are flip-invariant."""

    def __init__(self, in_chans: int = 3, classes: int = 5, symmetric: bool = True, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.fc = nn.Linear(8, classes)
        if symmetric:
            with torch.no_grad():
                self.conv.weight.copy_((self.conv.weight + self.conv.weight.flip(-1)) / 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def small_net(in_chans: int = 3, classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = create_model(
        "net14", stem="small", width=0.125, fc_width=16, num_classes=classes, in_chans=in_chans, init=True
    )
    return net.eval()


def images(n: int = 3, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def make_checkpoint(
    path: Path,
    *,
    spec: str = FAKE,
    classes: int = 4,
    in_chans: int = 1,
    crop: int = 16,
    seed: int = 0,
    normalize: Normalize | None = None,
    names: list[str] | None = None,
    eval_resize: int | None = None,
    flip: float = 0.5,
) -> Path:
    """A checkpoint in the trainer's format around an untrained small net14."""
    args = {
        "name": "net14",
        "num_classes": classes,
        "in_chans": in_chans,
        "act": "prelu",
        "stem": "small",
        "width": 0.125,
        "fc_width": 16,
        "dropout": 0.5,
    }
    torch.manual_seed(seed)
    model = create_model(**args, init=True)
    config = RunConfig()
    config.data.spec, config.data.crop = spec, crop
    config.data.scale_min = config.data.scale_max = crop
    config.data.eval_resize = eval_resize or crop
    config.data.flip = flip
    normalize = normalize or Normalize([128.0] * in_chans, [64.0] * in_chans)
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "epoch": 0,
        "step": 0,
        "config": config.to_dict(),
        "model_args": args,
        "classes": names or [f"class{i}" for i in range(classes)],
        "normalization": normalize.state_dict(),
    }
    return save_checkpoint(state, path)


# ------------------------------------------------------------------------------------------ metrics


def test_metrics_on_hand_made_scores():
    scores = torch.tensor(
        [
            [0.50, 0.20, 0.10, 0.05, 0.05, 0.10],  # target 0: top-1 hit
            [0.30, 0.25, 0.20, 0.15, 0.06, 0.04],  # target 4: 5th best, a top-5 hit only
            [0.30, 0.25, 0.20, 0.15, 0.06, 0.04],  # target 5: last, a miss
            [0.10, 0.60, 0.10, 0.10, 0.05, 0.05],  # target 1: top-1 hit
        ]
    )
    targets = torch.tensor([0, 4, 5, 1])
    m = metrics_from_scores(scores, targets, 6)
    assert m["n_images"] == 4
    assert m["top1_err"] == pytest.approx(0.5)
    assert m["top5_err"] == pytest.approx(0.25)
    assert m["per_class_err"][:2] == [0.0, 0.0]
    assert m["per_class_err"][4] == m["per_class_err"][5] == 1.0
    assert np.isnan(m["per_class_err"][2])  # no image of class 2
    assert m["per_class_top5_err"][4] == 0.0 and m["per_class_top5_err"][5] == 1.0
    confusion = torch.tensor(m["confusion"])
    assert confusion.sum() == 4 and confusion[4, 0] == 1 and confusion[5, 0] == 1 and confusion[1, 1] == 1
    with pytest.raises(ValueError, match=r"expected scores \(N, 6\)"):
        metrics_from_scores(scores[:, :5], targets, 6)


# ------------------------------------------------------------------------------------------- views


def test_flip_invariant_model_gives_equal_single_and_ten_view_scores():
    x = images(4, h=16, w=16)
    # resize == crop: all five crops are the whole image, the ten views differ only by the flip
    norm = Normalize([128.0] * 3, [64.0] * 3)
    invariant = ToyNet(symmetric=True).eval()
    one = single_view(invariant, x, resize=16, crop=16, normalize=norm)
    ten = ten_view(invariant, x, resize=16, crop=16, normalize=norm)
    torch.testing.assert_close(ten, one, rtol=1e-5, atol=1e-6)
    assert torch.allclose(one.sum(1), torch.ones(4))
    # the control: the same model with asymmetric kernels is not invariant and the two differ
    plain = ToyNet(symmetric=False).eval()
    ten, one = (view(plain, x, resize=16, crop=16, normalize=norm) for view in (ten_view, single_view))
    assert (ten - one).abs().max() > 1e-3


def test_ten_view_is_the_mean_of_the_ten_crops():
    model = ToyNet(symmetric=False).eval()
    x = images(2, h=20, w=24)
    big = F.interpolate(x.float(), size=(20, 24), mode="bilinear", antialias=True, align_corners=False)
    crops = [big[..., :16, :16], big[..., :16, 8:], big[..., 4:, :16], big[..., 4:, 8:], big[..., 2:18, 4:20]]
    crops += [c.flip(-1) for c in crops]
    expected = torch.stack([F.softmax(model(c), dim=1) for c in crops]).mean(0)
    torch.testing.assert_close(ten_view(model, x, resize=20, crop=16), expected, rtol=1e-5, atol=1e-6)


def test_dense_at_the_window_size_equals_single_view():
    net = small_net()
    x = images(3, h=16, w=16)
    norm = Normalize([120.0, 110.0, 100.0], [60.0, 60.0, 60.0])
    window = net.feature_size(16)
    assert feature_window(net, 16, 3) == window
    one = single_view(net, x, resize=16, crop=16, normalize=norm)
    d = dense(net, x, scale=16, window=window, normalize=norm, flip=False)
    torch.testing.assert_close(d, one, rtol=1e-5, atol=1e-6)
    mirrored = single_view(net, x.flip(-1), resize=16, crop=16, normalize=norm)
    both = dense(net, x, scale=16, window=window, normalize=norm)
    torch.testing.assert_close(both, (one + mirrored) / 2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool_on_map", [True, False])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_dense_windows_equal_an_explicit_loop(stride: int, pool_on_map: bool):
    net = small_net(seed=1)
    x = images(2, h=24, w=30, seed=1)
    wh, ww = net.feature_size(16)
    got = dense(net, x, scale=24, window=(wh, ww), stride=stride, pool_on_map=pool_on_map)
    with torch.no_grad():
        resized = F.interpolate(
            x.float(), size=(24, 30), mode="bilinear", antialias=True, align_corners=False
        )
        expected = []
        for view in (resized, resized.flip(-1)):
            fmap = net.forward_features(view)
            h, w = fmap.shape[-2:]
            probs = [
                F.softmax(net.forward_head(fmap[..., i : i + wh, j : j + ww]), dim=1)
                for i in range(0, h - wh + 1, stride)
                for j in range(0, w - ww + 1, stride)
            ]
            expected.append(torch.stack(probs).mean(0))
    reference = (expected[0] + expected[1]) / 2
    torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-6)
    # chunking the head calls changes nothing
    chunked = dense(net, x, scale=24, window=(wh, ww), stride=stride, max_windows=1, pool_on_map=pool_on_map)
    torch.testing.assert_close(chunked, got, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("size", "window", "levels", "stride"),
    [
        ((9, 11), (7, 5), (4, 2, 1), 1),  # bins of unequal size, overlapping by one
        ((9, 11), (7, 5), (3, 2), 2),
        ((6, 6), (3, 4), (7, 3), 1),  # levels larger than the window: rows serve several bins
        ((5, 8), (5, 8), (6, 3, 2, 1), 1),  # one window, the whole map
    ],
)
def test_window_pyramids_equal_spp_on_every_window(size, window, levels, stride):
    fmap = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    wh, ww = window
    spp = SpatialPyramidPool2d(levels)
    windows = fmap.unfold(2, wh, stride).unfold(3, ww, stride)  # (N, C, nh, nw, wh, ww)
    expected = spp(windows.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, wh, ww))
    torch.testing.assert_close(window_pyramids(fmap, levels, window, stride), expected, rtol=0, atol=0)


def test_dense_below_the_window_size_uses_the_whole_map():
    net = small_net()
    x = images(2, h=12, w=12)
    whole = dense(net, x, scale=12, window=net.feature_size(16), flip=False)
    torch.testing.assert_close(whole, single_view(net, x, resize=12, crop=12), rtol=1e-5, atol=1e-6)


def test_per_pixel_mean_is_used_at_its_size_and_its_channel_average_elsewhere():
    net = small_net(seed=2)
    x = images(2, h=16, w=16, seed=2)
    mean = torch.rand(3, 16, 16) * 255
    pixel = Normalize(mean, [50.0] * 3)
    channel = Normalize(mean.mean(dim=(1, 2)), [50.0] * 3)
    window = net.feature_size(16)
    # at the mean image's own size: exactly the training normalization
    at_crop = dense(net, x, scale=16, window=window, normalize=pixel, flip=False)
    torch.testing.assert_close(at_crop, single_view(net, x, resize=16, crop=16, normalize=pixel))
    # the whole image at another size: the channel average of the mean image
    larger = dense(net, x, scale=24, window=window, normalize=pixel)
    torch.testing.assert_close(larger, dense(net, x, scale=24, window=window, normalize=channel))


def test_multi_scale_is_the_mean_of_the_dense_scales():
    net = small_net(seed=3)
    x = images(2, h=16, w=20, seed=3)
    window = net.feature_size(16)
    both = dense(net, x, scale=(16, 22), window=window, stride=2)
    parts = [dense(net, x, scale=s, window=window, stride=2) for s in (16, 22)]
    torch.testing.assert_close(both, (parts[0] + parts[1]) / 2)


def test_views_refuse_bad_input():
    net = small_net()
    x = images(1)
    with pytest.raises(ValueError, match="training mode"):
        single_view(net.train(), x, resize=16, crop=16)
    net.eval()
    with pytest.raises(ValueError, match="crop <= resize"):
        ten_view(net, x, resize=12, crop=16)
    with pytest.raises(ValueError, match="stride"):
        dense(net, x, scale=16, window=8, stride=0)
    with pytest.raises(ValueError, match="forward_features and forward_head"):
        dense(nn.Sequential(nn.Flatten(), nn.Linear(768, 2)).eval(), x, scale=16, window=8)


# ------------------------------------------------------------------------------------------ evaluate


def test_ensemble_of_one_checkpoint_equals_that_checkpoint(tmp_path: Path):
    a = make_checkpoint(tmp_path / "a.pt", seed=0)
    b = make_checkpoint(tmp_path / "b.pt", seed=1)
    ds = open_dataset(FAKE, "val")
    one = evaluate([a], ds, EvalOptions(views="dense", scales=[16, 20], batch_size=8, save_scores=True))
    member = load_member(a)
    x = ds.images
    window = member.model.feature_size(16)
    direct = dense(member.model, x, scale=(16, 20), window=window, normalize=member.normalize)
    torch.testing.assert_close(one["scores"]["scores"], direct, rtol=1e-5, atol=1e-6)
    assert one["n_images"] == len(ds) == 21
    assert one["per_model"][0]["top1_err"] == one["top1_err"]
    reference = metrics_from_scores(direct, ds.targets, ds.classes)
    assert one["top1_err"] == reference["top1_err"] and one["top5_err"] == reference["top5_err"]
    assert one["confusion"] == reference["confusion"]
    # the same checkpoint twice changes nothing; two models average their scores
    twice = evaluate([a, a], ds, EvalOptions(views="dense", scales=[16, 20], batch_size=8, save_scores=True))
    torch.testing.assert_close(twice["scores"]["scores"], one["scores"]["scores"])
    pair = evaluate([a, b], ds, EvalOptions(views="dense", scales=[16, 20], batch_size=8, save_scores=True))
    other = evaluate([b], ds, EvalOptions(views="dense", scales=[16, 20], batch_size=8, save_scores=True))
    mean = (one["scores"]["scores"] + other["scores"]["scores"]) / 2
    torch.testing.assert_close(pair["scores"]["scores"], mean)
    assert [m["top1_err"] for m in pair["per_model"]] == [one["top1_err"], other["top1_err"]]


def test_results_file_and_saved_scores_round_trip(tmp_path: Path):
    ck = make_checkpoint(tmp_path / "a.pt")
    results = evaluate([ck], None, EvalOptions(views="ten", scales=[18], batch_size=5, save_scores=True))
    assert results["data"] == FAKE  # the checkpoint's own data by default
    path = write_results(results, tmp_path / "out")
    saved = json.loads(path.read_text())
    for key in ("top1_err", "top5_err", "n_images", "views", "scales", "per_class_err", "per_model"):
        assert key in saved
    assert saved["views"] == "ten" and saved["scales"] == [18] and len(saved["per_class_err"]) == 4
    scores = load_scores(tmp_path / "out" / "scores.pt")
    torch.testing.assert_close(scores["scores"], results["scores"]["scores"])
    again = metrics_from_scores(scores["scores"], scores["targets"], scores["classes"])
    assert again["top1_err"] == results["top1_err"]


def test_file_images_of_different_sizes_are_each_counted(tmp_path: Path):
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    sizes = [(20, 24), (24, 20), (20, 24), (18, 18), (30, 22)]
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i, (h, w) in enumerate(sizes):
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")
    spec = f"folder:{root}"
    ds = open_dataset(spec, "val", cache=False, workers=1)
    assert isinstance(ds, FileDataset)
    ck = make_checkpoint(tmp_path / "a.pt", spec=spec, classes=2, in_chans=3, names=["a", "b"])
    for views in ("single", "ten", "dense"):
        r = evaluate([ck], ds, EvalOptions(views=views, scales=[18, 20], batch_size=4))
        assert r["n_images"] == 10 and sum(r["per_class_images"]) == 10


def _image_folder(root: Path, sizes: list[tuple[int, int]], fmt: str = "png", seed: int = 0) -> str:
    """folder:ROOT with classes a and b in train/ and val/, one image per (h, w) in `sizes` each,
    random pixels (PNG) or smooth ones (JPEG)."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i, (h, w) in enumerate(sizes):
                if fmt == "png":
                    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                else:
                    grid = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
                    pixels = np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BILINEAR))
                Image.fromarray(pixels).save(root / split / c / f"{i}.{fmt}")
    return f"folder:{root}"


class _BatchSizes(ToyNet):
    """ToyNet recording the batch size of every forward pass."""

    def __init__(self) -> None:
        super().__init__(in_chans=3, classes=2)
        self.sizes: list[int] = []

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return super().forward_features(x)


@pytest.mark.parametrize(("views", "per_image"), [("single", 1), ("ten", 10)])
def test_mixed_size_files_are_scored_in_full_batches(tmp_path: Path, views: str, per_image: int):
    """Five image sizes, ten images: views are cut in the loader, so a batch of 5 is one forward pass
    of 5 (or 50 crops), not one pass per image size."""
    spec = _image_folder(tmp_path / "f", [(20, 24), (24, 20), (18, 18), (30, 22), (19, 33)])
    ds = open_dataset(spec, "val", cache=False, workers=0)
    assert isinstance(ds, FileDataset)
    model = _BatchSizes().eval()
    r = evaluate(
        [model], ds, EvalOptions(views=views, scales=[18], batch_size=5 * per_image, crop=16, workers=1)
    )
    assert r["n_images"] == 10 and model.sizes == [5 * per_image, 5 * per_image]


def test_training_time_validation_and_single_view_eval_agree_on_non_square_images(tmp_path: Path):
    """One eval view: the trainer's validation (EvalTransform through the loader's workers) and
    `evaluate(views="single")` score the same pixels of a 375 x 500 photo, so the same errors."""
    from rectifiers.loader import BatchLoader
    from rectifiers.transforms import EvalTransform

    spec = _image_folder(tmp_path / "photos", [(375, 500), (500, 375), (375, 500)])
    ds = open_dataset(spec, "val", cache=False, workers=0)
    assert isinstance(ds, FileDataset)
    norm = Normalize([128.0] * 3, [64.0] * 3)
    ck = make_checkpoint(
        tmp_path / "a.pt",
        spec=spec,
        classes=2,
        in_chans=3,
        crop=32,
        eval_resize=37,
        normalize=norm,
        names=["a", "b"],
    )
    member = load_member(ck)
    loader = BatchLoader(ds, 4, train=False, transform=EvalTransform(37, 32, normalize=member.normalize))
    with torch.no_grad():
        trained_val = torch.cat([F.softmax(member.model(x), dim=1) for x, _ in loader])
    r = evaluate([ck], ds, EvalOptions(views="single", batch_size=4, save_scores=True, channels_last=False))
    torch.testing.assert_close(r["scores"]["scores"], trained_val, rtol=0, atol=1e-6)
    val_err = (trained_val.argmax(1) != ds.targets).double().mean().item()
    assert r["top1_err"] == pytest.approx(val_err)


def test_a_broken_val_file_is_skipped_named_and_never_replaced(tmp_path: Path):
    spec = _image_folder(tmp_path / "f", [(20, 24), (24, 20), (18, 18)])
    broken = tmp_path / "f" / "val" / "a" / "1.png"
    broken.write_bytes(broken.read_bytes()[:120])  # truncated: the header still reads
    ds = open_dataset(spec, "val", cache=False, workers=0)
    assert isinstance(ds, FileDataset) and len(ds) == 6
    ck = make_checkpoint(tmp_path / "a.pt", spec=spec, classes=2, in_chans=3, names=["a", "b"])
    for views in ("single", "ten", "dense"):
        with pytest.warns(UserWarning, match="truncated"):
            r = evaluate([ck], ds, EvalOptions(views=views, scales=[18, 20], batch_size=4, save_scores=True))
        assert r["n_images"] == 5 and r["per_class_images"] == [2, 3]
        assert r["skipped"] == [str(broken)]
        targets = r["scores"]["targets"]
        assert torch.bincount(targets, minlength=2).tolist() == r["per_class_images"]
        assert r["scores"]["indices"].tolist() == [0, 2, 3, 4, 5]
    assert "1 file(s) skipped" in format_results(r)


def test_training_time_validation_counts_a_broken_file_nowhere(tmp_path: Path):
    from rectifiers.loader import BatchLoader
    from rectifiers.transforms import EvalTransform

    spec = _image_folder(tmp_path / "f", [(20, 24), (24, 20), (18, 18)])
    broken = tmp_path / "f" / "val" / "b" / "0.png"
    broken.write_bytes(broken.read_bytes()[:120])
    ds = open_dataset(spec, "val", cache=False, workers=0)
    loader = BatchLoader(ds, 2, train=False, transform=EvalTransform(18, 16))
    with pytest.warns(UserWarning, match="not counted"):
        labels = torch.cat([y for _, y in loader])
    assert torch.bincount(labels, minlength=2).tolist() == [3, 2]


@pytest.mark.parametrize("views", ["ten", "dense"])
def test_mirrored_views_follow_the_checkpoints_training(tmp_path: Path, views: str):
    ds = open_dataset(FAKE, "val")
    no_flip = make_checkpoint(tmp_path / "plain.pt", flip=0.0)
    member = load_member(no_flip)
    assert not member.flip and load_member(make_checkpoint(tmp_path / "f.pt")).flip
    kw = {"normalize": member.normalize}
    window = member.model.feature_size(16)
    if views == "ten":
        direct = {
            f: ten_view(member.model, ds.images, resize=18, crop=16, flip=f, **kw) for f in (False, True)
        }
    else:
        direct = {
            f: dense(member.model, ds.images, scale=18, window=window, flip=f, **kw) for f in (False, True)
        }
    assert (direct[True] - direct[False]).abs().max() > 1e-4  # the mirrors change this model's scores
    for flip, expected in ((None, direct[False]), (False, direct[False]), (True, direct[True])):
        r = evaluate([no_flip], ds, EvalOptions(views=views, scales=[18], flip=flip, save_scores=True))
        torch.testing.assert_close(r["scores"]["scores"], expected, rtol=1e-5, atol=1e-6)
        assert r["flip"] == [bool(flip)]


def test_cli_flip_options_reach_evaluate(tmp_path: Path):
    ck = make_checkpoint(tmp_path / "plain.pt", flip=0.0)
    for option, expected in (([], [False]), (["--flip"], [True]), (["--no-flip"], [False])):
        out = tmp_path / f"eval{len(option)}{option}"
        assert (
            main(["eval", str(ck), "--views", "ten", "--scales", "18", "--quiet", "--out", str(out), *option])
            == 0
        )
        assert json.loads((out / "results.json").read_text())["flip"] == expected


def test_mixed_size_jpeg_folder_trains_and_evaluates_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A folder of JPEG photos of varied shorter sides and aspects (1:2 to 2:1): a few training steps
    from files, then 10-view and dense evaluation of its val split, every image counted."""
    from rectifiers.engine import fit

    monkeypatch.setenv("RECTIFIERS_CACHE", str(tmp_path / "cache"))
    sizes = [(20, 40), (40, 20), (24, 30), (30, 24), (18, 18), (26, 35), (35, 21), (19, 38)]
    spec = _image_folder(tmp_path / "jpegs", sizes, fmt="jpg")
    out = tmp_path / "run"
    overrides = tiny_overrides(
        out,
        **{
            "data.spec": spec,
            "data.eval_resize": "18",
            "data.workers": "0",
            "train.batch_size": "8",
            "train.max_steps": "2",
        },
    )
    fit(load_config(None, overrides))
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["val_images"] == 16
    for views, scales in (("ten", [18]), ("dense", [16, 20])):
        r = evaluate([out / "last.pt"], None, EvalOptions(views=views, scales=scales, batch_size=8))
        assert r["n_images"] == 16 and r["per_class_images"] == [8, 8] and r["skipped"] == []
        assert 0.0 <= r["top1_err"] <= 1.0


def test_a_checkpoints_config_is_read_through_run_config(tmp_path: Path):
    """load_member takes crop, resize, data and mirroring from RunConfig.from_dict: a value it would
    refuse in a config file is refused here too, naming the file and the key."""
    member = load_member(make_checkpoint(tmp_path / "a.pt", crop=16, eval_resize=18, flip=0.0))
    assert (member.crop, member.eval_resize, member.data_spec, member.flip) == (16, 18, FAKE, False)
    bad = make_checkpoint(tmp_path / "bad.pt")
    state = torch.load(bad, weights_only=True)
    state["config"]["data"]["crop"] = "sixteen"
    save_checkpoint(state, bad)
    with pytest.raises(CheckpointError, match=r"bad\.pt: unusable config in the checkpoint: .*data\.crop"):
        load_member(bad)


def test_mismatched_and_broken_checkpoints_are_refused_by_name(tmp_path: Path):
    ds = open_dataset(FAKE, "val")
    wrong = make_checkpoint(tmp_path / "five_classes.pt", classes=5)
    with pytest.raises(ValueError, match=r"five_classes\.pt: the model has 5 classes but .* has 4"):
        evaluate([wrong], ds)
    rgb = make_checkpoint(tmp_path / "rgb.pt", in_chans=3)
    with pytest.raises(ValueError, match=r"rgb\.pt: the model takes 3-channel images"):
        evaluate([rgb], ds)
    good = make_checkpoint(tmp_path / "good.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"broken\.pt: truncated or corrupt"):
        evaluate([good, broken], ds)
    with pytest.raises(ValueError, match="every scale must be >= 16"):
        evaluate([good], ds, EvalOptions(views="single", scales=[12]))
    with pytest.raises(ValueError, match="unknown views"):
        evaluate([good], ds, EvalOptions(views="five"))
    # a bare module: it must say its crop, and its output is checked against the class count
    with pytest.raises(ValueError, match="needs crop="):
        evaluate([ToyNet(in_chans=1, classes=4)], ds)
    with pytest.raises(ValueError, match="ToyNet: outputs 5 scores per image"):
        evaluate([good, ToyNet(in_chans=1, classes=5)], ds, EvalOptions(crop=16))


def _module_state(model: nn.Module) -> dict[str, object]:
    """What a caller sees of a module: every submodule's mode, every tensor's storage and layout."""
    return {
        "modes": [m.training for m in model.modules()],
        "tensors": [
            (name, t.data_ptr(), t.device, t.dtype, t.stride())
            for name, t in [*model.named_parameters(), *model.named_buffers()]
        ],
    }


@pytest.mark.parametrize("views", ["single", "dense"])
def test_evaluate_leaves_the_given_module_as_it_was(views: str):
    """A bare module in training mode comes back in training mode, with its own tensors (device,
    dtype, memory format), though evaluate ran it in eval mode and channels-last."""
    ds = open_dataset(FAKE, "val")
    model = small_net(in_chans=1, classes=4).train()
    before = _module_state(model)
    expected = evaluate(
        [model.eval()], ds, EvalOptions(views=views, scales=[16], crop=16, channels_last=False)
    )
    model.train()
    r = evaluate([model], ds, EvalOptions(views=views, scales=[16], crop=16))
    assert _module_state(model) == before
    assert r["top1_err"] == expected["top1_err"]  # scored in eval mode all the same


def test_evaluate_leaves_a_given_member_as_it_was(tmp_path: Path):
    ds = open_dataset(FAKE, "val")
    member = load_member(make_checkpoint(tmp_path / "a.pt"))
    member.model.train()
    before = _module_state(member.model)
    evaluate([member], ds, EvalOptions(views="dense", scales=[16]))
    assert member.window == (0, 0) and _module_state(member.model) == before


def test_eval_options_refuse_bad_values():
    for kwargs, match in (
        ({"views": "five"}, "unknown views"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"stride": True}, "stride must be a positive integer"),
        ({"scales": (16, 0)}, "scales must be positive integers"),
    ):
        with pytest.raises(ValueError, match=match):
            EvalOptions(**kwargs)
    assert EvalOptions(scales=[16, 20]).scales == (16, 20)


# ------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a seconds-long training run (tiny fake data, narrow net14)."""
    from rectifiers.engine import fit

    out = tmp_path_factory.mktemp("run") / "tiny"
    fit(load_config(None, tiny_overrides(out, **{"train.max_steps": "3"})))
    return out / "last.pt"


def test_cli_eval_end_to_end(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "eval"
    argv = [str(trained), "--views", "dense", "--scales", "16,20", "--out", str(out), "--save-scores"]
    assert main(["eval", *argv, "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "dense testing at scale(s) 16, 20" in printed and "multi-scale" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["n_images"] == 64 and results["views"] == "dense" and results["scales"] == [16, 20]
    assert 0.0 <= results["top1_err"] <= 1.0 and 0.0 <= results["top5_err"] <= 1.0
    assert len(results["per_class_err"]) == 4
    assert (out / "scores.pt").is_file()
    # defaults: the checkpoint's data and eval_resize; output beside the checkpoint
    assert main(["eval", str(trained), "--quiet"]) == 0
    default = json.loads((trained.parent / "eval_single" / "results.json").read_text())
    assert default["scales"] == [16] and default["data"].startswith("fake:")


def test_cli_eval_errors_name_the_file(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    broken = tmp_path / "cut.pt"
    broken.write_bytes(trained.read_bytes()[:1000])
    assert main(["eval", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert "cut.pt" in capsys.readouterr().err
    other = "fake:n=64,size=16,classes=7,channels=1,seed=1"
    assert main(["eval", str(trained), "--data", other, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(trained) in err and "4 classes" in err and "7" in err
    assert main(["eval", str(trained), "--scales", "16,x"]) == 2


# --------------------------------------------------------------------------------------- DDP


@pytest.mark.distributed
def test_torchrun_eval_counts_each_image_once(tmp_path: Path):
    ck = make_checkpoint(tmp_path / "a.pt")  # FAKE has 21 validation images: 11 + 10 over two ranks
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        "--nnodes=1",
        f"--master-port={free_port()}",
        "-m",
        "rectifiers",
        "eval",
        str(ck),
        "--views",
        "dense",
        "--scales",
        "16,20",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--save-scores",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads((out / "results.json").read_text())
    one = evaluate([ck], FAKE, EvalOptions(views="dense", scales=[16, 20], save_scores=True))
    assert ddp["world_size"] == 2
    assert ddp["n_images"] == one["n_images"] == 21
    assert ddp["top1_err"] == one["top1_err"] and ddp["top5_err"] == one["top5_err"]
    assert ddp["confusion"] == one["confusion"]
    scores = load_scores(out / "scores.pt")
    assert scores["indices"].tolist() == list(range(21))
    torch.testing.assert_close(scores["scores"], one["scores"]["scores"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("classes", [2, 5, 6])
def test_the_table_shows_top5_only_where_it_can_be_missed(tmp_path: Path, classes: int):
    # With 5 classes or fewer every image is in its top 5: a top-5 column of 0.00% says nothing.
    spec = f"fake:n=40,val=12,size=16,classes={classes},channels=1,seed=3"
    ck = make_checkpoint(tmp_path / "a.pt", spec=spec, classes=classes)
    table = format_results(
        evaluate([ck], open_dataset(spec, "val"), EvalOptions(views="single", batch_size=8))
    )
    assert ("top-5" in table) == (classes > 5)
    assert "top-1 err" in table
