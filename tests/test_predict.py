from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import tiny_overrides
from rectifiers.checkpoint.inference import load_member
from rectifiers.cli import main
from rectifiers.config import load_config
from rectifiers.data import open_dataset
from rectifiers.engine import fit
from rectifiers.predict import image_paths, predict
from rectifiers.views import dense, feature_window, single_view, ten_view

SPEC = "fake:n=256,size=16,classes=4,channels=1,seed=1"
CLASSES = ["class0", "class1", "class2", "class3"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    fit(load_config(None, tiny_overrides(out, **{"data.spec": SPEC})))
    return out / "best.pt"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Validation digits of the fake set as files: gray PNGs, an RGB JPEG of another size (converted
    to the model's 1 channel), a corrupt PNG, a truncated JPEG and a text file (not an image name)."""
    folder = tmp_path_factory.mktemp("images")
    (folder / "sub").mkdir()
    ds = open_dataset(SPEC, "val")
    gray = [ds.images[i, 0].numpy() for i in range(3)]
    files = {}
    for i, a in enumerate(gray[:2]):
        files[f"gray{i}"] = folder / f"a_gray{i}.png"
        Image.fromarray(a).save(files[f"gray{i}"])
    files["rgb"] = folder / "sub" / "b_rgb.jpg"
    Image.fromarray(np.stack([gray[2]] * 3, axis=-1)).resize((24, 20)).save(files["rgb"], quality=95)
    files["corrupt"] = folder / "c_corrupt.png"
    files["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    files["truncated"] = folder / "d_truncated.jpg"
    full = folder / "full.jpg"
    Image.fromarray(np.stack([gray[0]] * 3, axis=-1)).resize((64, 64)).save(full)
    files["truncated"].write_bytes(full.read_bytes()[:300])
    full.unlink()
    (folder / "notes.txt").write_text("not an image")
    files["folder"] = folder
    return files


def _uint8(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("L")).copy())[None, None]


def test_folder_with_bad_files_reports_them_and_predicts_the_rest(checkpoint: Path, images: dict[str, Path]):
    missing = images["folder"] / "missing.png"
    records = predict(checkpoint, [images["folder"], missing], top=3)
    by_path = {Path(r["path"]): r for r in records}
    # the folder is expanded recursively and sorted, the text file ignored, the inputs kept in order
    files = sorted(images[k] for k in ("gray0", "gray1", "rgb", "corrupt", "truncated"))
    assert list(by_path) == [*files, missing]
    for key in ("corrupt", "truncated"):
        record = by_path[images[key]]
        assert record["predictions"] == [] and record["error"]
    assert "no such file" in by_path[missing]["error"]
    for key in ("gray0", "gray1", "rgb"):
        record = by_path[images[key]]
        assert record["error"] is None
        preds = record["predictions"]
        assert [p["rank"] for p in preds] == [1, 2, 3]
        probs = [p["probability"] for p in preds]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(p["class"] == CLASSES[p["index"]] for p in preds)


def test_probabilities_are_the_single_view_softmax_in_rank_order(checkpoint: Path, images: dict[str, Path]):
    member = load_member(checkpoint)
    for key in ("gray0", "rgb"):  # the JPEG is 24×20 and RGB: converted to gray, resized, cropped
        expected = single_view(
            member.model,
            _uint8(images[key]),
            resize=member.eval_resize,
            crop=member.crop,
            normalize=member.normalize,
        )[0]
        (record,) = predict(checkpoint, [images[key]], top=10)  # more than the 4 classes: all of them
        preds = record["predictions"]
        assert len(preds) == 4 and sum(p["probability"] for p in preds) == pytest.approx(1.0, abs=1e-5)
        order = expected.argsort(descending=True).tolist()
        assert [p["index"] for p in preds] == order
        assert [p["class"] for p in preds] == [CLASSES[i] for i in order]
        got = torch.tensor([p["probability"] for p in preds])
        torch.testing.assert_close(got, expected[order], rtol=0, atol=1e-6)


def test_ten_and_dense_views_match_the_view_functions(checkpoint: Path, images: dict[str, Path]):
    member = load_member(checkpoint)
    x = _uint8(images["gray1"])
    kw = {"normalize": member.normalize}
    expected = {
        "ten": ten_view(member.model, x, resize=member.eval_resize, crop=member.crop, **kw)[0],
        "dense": dense(member.model, x, scale=20, window=feature_window(member.model, member.crop, 1), **kw)[
            0
        ],
    }
    for views, scales in (("ten", None), ("dense", [20])):
        (record,) = predict(checkpoint, [images["gray1"]], top=4, views=views, scales=scales)
        got = torch.zeros(4)
        for p in record["predictions"]:
            got[p["index"]] = p["probability"]
        torch.testing.assert_close(got, expected[views], rtol=0, atol=1e-6)


def test_same_size_images_are_batched_without_changing_results(checkpoint: Path, images: dict[str, Path]):
    paths = [images["gray0"], images["rgb"], images["gray1"]]
    one = predict(checkpoint, paths, top=4, batch_size=1)
    many = predict(checkpoint, paths, top=4, batch_size=8)
    for a, b in zip(one, many, strict=True):
        assert a["path"] == b["path"] and [p["index"] for p in a["predictions"]] == [
            p["index"] for p in b["predictions"]
        ]
        for pa, pb in zip(a["predictions"], b["predictions"], strict=True):
            assert pa["probability"] == pytest.approx(pb["probability"], abs=1e-6)


def test_a_bare_module_needs_its_crop_and_takes_class_names(checkpoint: Path, images: dict[str, Path]):
    member = load_member(checkpoint)
    with pytest.raises(ValueError, match="crop"):
        predict(member.model, [images["gray0"]])
    (record,) = predict(
        member.model,
        [images["gray0"]],
        top=1,
        crop=member.crop,
        normalize=member.normalize,
        classes=list("wxyz"),
    )
    (ref,) = predict(checkpoint, [images["gray0"]], top=1)
    assert record["predictions"][0]["class"] == "wxyz"[ref["predictions"][0]["index"]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"views": "twelve"}, "views"),
        ({"top": 0}, "top"),
        ({"scales": [8]}, "crop"),
        ({"batch_size": 0}, "batch"),
    ],
)
def test_bad_arguments_are_value_errors(checkpoint: Path, images: dict[str, Path], kwargs, match):
    with pytest.raises(ValueError, match=match):
        predict(checkpoint, [images["gray0"]], **kwargs)


def test_image_paths_reports_an_empty_folder(tmp_path: Path):
    (tmp_path / "readme.md").write_text("x")
    ((path, reason),) = image_paths([tmp_path])
    assert path == str(tmp_path) and "no image files" in reason


def test_cli_prints_top_k_and_reports_bad_files(checkpoint: Path, images: dict[str, Path], capsys):
    assert main(["predict", str(checkpoint), str(images["folder"]), "--top", "2"]) == 0
    out, err = capsys.readouterr()
    assert str(images["gray0"]) in out and "%" in out and "class" in out
    assert str(images["corrupt"]) in err and str(images["truncated"]) in err
    assert str(images["corrupt"]) not in out
    # nothing predictable: non-zero exit
    assert main(["predict", str(checkpoint), str(images["corrupt"])]) == 1


def test_cli_writes_csv_and_json(checkpoint: Path, images: dict[str, Path], tmp_path: Path):
    csv_path, json_path = tmp_path / "p.csv", tmp_path / "p.json"
    args = ["predict", str(checkpoint), str(images["folder"]), "--top", "3"]
    assert main([*args, "--output", str(csv_path)]) == 0
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["path", "rank", "class", "index", "probability", "error"]
    errors = {row["path"] for row in rows if row["error"]}
    assert errors == {str(images["corrupt"]), str(images["truncated"])}
    gray = [row for row in rows if row["path"] == str(images["gray0"])]
    assert [row["rank"] for row in gray] == ["1", "2", "3"]
    assert all(row["class"] == CLASSES[int(row["index"])] and not row["error"] for row in gray)
    assert float(gray[0]["probability"]) >= float(gray[1]["probability"])

    assert main([*args, "--views", "ten", "--output", str(json_path)]) == 0
    data = json.loads(json_path.read_text())
    assert data["views"] == "ten" and data["checkpoint"] == str(checkpoint)
    results = {r["path"]: r for r in data["results"]}
    assert results[str(images["corrupt"])]["error"] and not results[str(images["corrupt"])]["predictions"]
    assert len(results[str(images["rgb"])]["predictions"]) == 3

    assert main([*args, "--output", str(tmp_path / "p.txt")]) == 2  # unknown output format


def test_mirrored_views_follow_the_models_training(checkpoint: Path, images: dict[str, Path]):
    member = load_member(checkpoint)
    assert member.flip  # tiny_overrides train with the default data.flip = 0.5
    x = _uint8(images["gray1"])
    expected = {
        f: ten_view(
            member.model, x, resize=member.eval_resize, crop=member.crop, normalize=member.normalize, flip=f
        )[0]
        for f in (False, True)
    }
    assert (expected[True] - expected[False]).abs().max() > 1e-4
    member.flip = False  # as a checkpoint trained with data.flip = 0 loads
    for flip, want in ((None, expected[False]), (True, expected[True])):
        (record,) = predict(member, [images["gray1"]], top=4, views="ten", flip=flip)
        got = torch.zeros(4)
        for p in record["predictions"]:
            got[p["index"]] = p["probability"]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_cli_takes_no_flip(checkpoint: Path, images: dict[str, Path], tmp_path: Path):
    out = tmp_path / "p.json"
    argv = [
        "predict",
        str(checkpoint),
        str(images["gray1"]),
        "--views",
        "ten",
        "--no-flip",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    direct = predict(checkpoint, [images["gray1"]], views="ten", flip=False)
    assert json.loads(out.read_text())["results"][0]["predictions"] == direct[0]["predictions"]


def test_eval_and_predict_default_to_the_device_train_does(checkpoint: Path, images: dict[str, Path]):
    from rectifiers.cli import build_parser
    from rectifiers.config import TrainConfig

    parser = build_parser()
    evaluated = parser.parse_args(["eval", str(checkpoint)])
    predicted = parser.parse_args(["predict", str(checkpoint), str(images["gray0"])])
    assert evaluated.device == predicted.device == TrainConfig().device == "auto"
    (auto,) = predict(checkpoint, [images["gray0"]], device="auto")  # CUDA where there is one
    (cpu,) = predict(checkpoint, [images["gray0"]], device="cpu")
    assert [p["index"] for p in auto["predictions"]] == [p["index"] for p in cpu["predictions"]]
    for a, c in zip(auto["predictions"], cpu["predictions"], strict=True):
        assert a["probability"] == pytest.approx(c["probability"], abs=1e-4)


def test_predict_leaves_a_given_member_as_it_was(checkpoint: Path, images: dict[str, Path]):
    member = load_member(checkpoint)
    member.model.train()
    params = [(p.data_ptr(), p.stride()) for p in member.model.parameters()]
    predict(member, [images["gray0"]], views="dense", classes=["a", "b", "c", "d"], resize=20)
    assert member.model.training and [(p.data_ptr(), p.stride()) for p in member.model.parameters()] == params
    assert member.window == (0, 0) and member.classes == CLASSES and member.eval_resize != 20
