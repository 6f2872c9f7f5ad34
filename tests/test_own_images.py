"""The README's "Train on your own images" commands, parsed out of README.md and run on a generated
folder: 2 classes, 20 train / 8 val photos each, of sizes 40x50 and 64x48."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from own_images import make_photo_folder
from rectifiers.cli import main
from rectifiers.config import load_config
from rectifiers.sizes_from_data import fill_from_data, suggested_batch, suggested_crop

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- own-images commands:"


def readme_commands() -> list[list[str]]:
    """The argument lists of the `rectifiers` lines of the bash block after the marker comment."""
    text = README.read_text()
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARKER) :], re.S)
    assert block is not None, "the own-images section lost its bash block"
    lines = [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]
    assert lines and all(line[0] == "rectifiers" for line in lines), lines
    return [line[1:] for line in lines]


def test_the_readme_block_trains_with_the_images_preset() -> None:
    commands = readme_commands()
    assert commands[0][:3] == ["train", "--config", "images"]
    assert "--data" in commands[0] and commands[0][commands[0].index("--data") + 1] == "folder:my_photos"


def test_sizes_and_batch_come_from_the_folder(tmp_path: Path) -> None:
    folder = make_photo_folder(tmp_path / "my_photos")
    config = fill_from_data(load_config("images", {"data.spec": f"folder:{folder}"}))
    d = config.data
    # shorter sides 40 and 48, median 44: crop 0.875 x 44 -> 40; 40 / 0.875 -> 46; x 1.25 -> 58
    assert (d.crop, d.scale_min, d.scale_max, d.eval_resize) == (40, 46, 58, 46)
    assert config.train.batch_size == 8  # 40 images: 5 steps an epoch
    overrides = {"data.spec": f"folder:{folder}", "train.batch_size": "4"}
    explicit = fill_from_data(load_config("images", overrides))
    assert explicit.train.batch_size == 4


@pytest.mark.parametrize(("images", "batch"), [(1, 1), (7, 1), (8, 2), (40, 8), (50_000, 128)])
def test_suggested_batch_leaves_four_steps_an_epoch(images: int, batch: int) -> None:
    assert suggested_batch(images) == batch


@pytest.mark.parametrize(("side", "crop"), [(10, 16), (28, 24), (32, 32), (44, 40), (500, 64)])
def test_suggested_crop(side: float, crop: int) -> None:
    assert suggested_crop(side) == crop


def test_the_readme_training_command_starts_on_a_small_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    """The README's train line as written (two steps of it): no batch error, the sizes it chose."""
    monkeypatch.chdir(tmp_path)
    make_photo_folder(tmp_path / "my_photos")
    assert main([*readme_commands()[0], "--max-steps", "2"]) == 0
    text = capsys.readouterr().err
    assert "40 train / 16 val images, 2 classes (cats, dogs)" in text
    assert "input: crops of 40 px from shorter side 46..58, flips 0.5" in text
    assert "batch 8," in text


@pytest.mark.slow
def test_the_readme_commands_learn_a_small_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    """Every command of the block, exactly as written: the run learns (chance is 50% error)."""
    monkeypatch.chdir(tmp_path)
    make_photo_folder(tmp_path / "my_photos")
    for argv in readme_commands():
        assert main(argv) == 0, argv
    out = capsys.readouterr()
    print(out.err + out.out)  # the README's sample outputs come from here (pytest -s)
    metrics = (tmp_path / "runs/my_photos/metrics.jsonl").read_text()
    lines = [json.loads(line) for line in metrics.splitlines()]
    assert min(r["val_top1_err"] for r in lines) <= 0.125  # at most 2 of the 16 val photos wrong
    assert lines[-1]["val_top1_err"] <= 0.25
    predicted = re.findall(r"1\. (cats|dogs) ", out.out)
    assert len(predicted) == 8 and predicted.count("cats") >= 6, out.out  # my_photos/val/cats


def test_a_batch_larger_than_the_folder_names_settings_that_exist(tmp_path: Path) -> None:
    from helpers import tiny_overrides
    from rectifiers.engine import fit

    config = load_config(None, tiny_overrides(tmp_path / "run", **{"train.batch_size": "512"}))
    with pytest.raises(ValueError, match=r"256 training images .* train\.batch_size \(512") as info:
        fit(config)
    message = str(info.value)
    assert "drop_last" not in message and "--batch-size" in message and "--config images" in message
