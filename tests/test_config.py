from __future__ import annotations

from pathlib import Path

import pytest

from rectifiers.config import RunConfig, list_presets, load_config, parse_override, valid_keys


def test_defaults_validate_and_round_trip():
    config = load_config()
    assert config.model.act == "prelu"
    again = RunConfig.from_dict(config.to_dict())
    assert again == config


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_loads(preset):
    config = load_config(preset)
    assert config.data.crop <= config.data.scale_min <= config.data.scale_max


def test_paper_presets_follow_the_recipe():
    config = load_config("imagenet_model_a")
    assert (config.data.crop, config.data.scale_min, config.data.scale_max) == (224, 256, 512)
    assert config.optim.lr == 0.01 and config.optim.momentum == 0.9 and config.optim.weight_decay == 5e-4
    assert config.train.batch_size == 128 and config.model.dropout == 0.5
    assert config.init.mode == "fan_out" and config.init.fc_std == [0.01, 0.01, 0.001]
    assert config.data.mean == "pixel" and not config.data.divide_std


def test_overrides_convert_to_the_field_type():
    config = load_config(
        None,
        {
            "train.epochs": "3",
            "optim.lr": "0.1",
            "train.deterministic": "yes",
            "model.depths": "4,22",
            "init.fc_std": [0.01, 0.01, 0.001],
        },
    )
    assert config.train.epochs == 3 and config.optim.lr == 0.1 and config.train.deterministic is True
    assert config.model.depths == [4, 22] and config.init.fc_std == [0.01, 0.01, 0.001]


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match="unknown config key 'train.epoch'.*train.epochs"):
        load_config(None, {"train.epoch": "3"})
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, {"nosection.x": "3"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.epochs", "x", "train.epochs"),
        ("train.epochs", "2.5", "train.epochs"),
        ("train.epochs", "0", "train.epochs must be > 0"),
        ("optim.lr", "-1", "optim.lr must be > 0"),
        ("optim.lr", "nan", "finite"),
        ("model.act", "tanh", "model.act must be one of"),
        ("train.deterministic", "maybe", "true or false"),
        ("data.scale_min", "20", "crop <= scale_min"),
        ("model.dropout", "1.0", "model.dropout"),
        ("optim.schedule", "milestones", "optim.milestones"),
        ("train.keep_last", "0", "train.keep_last must be > 0"),
        ("train.seed", "-1", "train.seed must be >= 0"),
        ("train.device", "gpu0", "train.device must be auto or a torch device .*got 'gpu0'"),
    ],
)
def test_bad_values_are_named(key, value, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, {key: value})


def test_parse_override():
    assert parse_override("train.epochs=3") == ("train.epochs", "3")
    with pytest.raises(ValueError, match="key=value"):
        parse_override("train.epochs")


def test_toml_file_and_errors(tmp_path: Path):
    good = tmp_path / "run.toml"
    good.write_text('[train]\nepochs = 2\n[model]\nact = "relu"\n')
    config = load_config(good)
    assert config.train.epochs == 2 and config.model.act == "relu"
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 2\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("[train]\nepoks = 2\n")
    with pytest.raises(ValueError, match="epoks"):
        load_config(typo)
    with pytest.raises(ValueError, match="unknown preset"):
        load_config("no-such-preset")
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")


def test_valid_keys_cover_every_section():
    sections = {key.split(".")[0] for key in valid_keys()}
    assert sections == {"data", "model", "init", "optim", "train"}


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("optim.weight_deacy", "optim.weight_decay"), ("train.epoch", "train.epochs"), ("lr", "optim.lr")],
)
def test_unknown_key_suggests_the_closest(typo, meant):
    with pytest.raises(ValueError) as info:
        load_config(None, {typo: "3"})
    message = str(info.value)
    assert f"did you mean {meant}?" in message
    assert "train.tensorboard" not in message  # not the whole list of keys on one line


def test_unknown_key_without_a_close_match_lists_the_keys_by_section():
    with pytest.raises(ValueError, match=r"valid keys:\n  data\.\{spec, crop") as info:
        load_config(None, {"qqqq.zzzz": "3"})
    assert "did you mean" not in str(info.value)


def test_a_preset_name_is_not_shadowed_by_a_folder_of_that_name(tmp_path: Path, monkeypatch):
    (tmp_path / "cifar10").mkdir()  # e.g. the data set itself, unpacked in the working directory
    monkeypatch.chdir(tmp_path)
    from rectifiers.config import PRESET_DIR

    assert load_config("cifar10") == load_config(PRESET_DIR / "cifar10.toml")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config("conf/cifar10")  # a path separator: a file, never a preset
