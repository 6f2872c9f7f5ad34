"""Choice lists are declared once, next to what they name; the config's validation and the CLI's
choices read those declarations."""

from __future__ import annotations

import argparse

import pytest

from rectifiers.cli import build_parser, main
from rectifiers.config import AMP_MODES, RunConfig
from rectifiers.init import MODES, SCHEMES
from rectifiers.layers import ACTIVATIONS
from rectifiers.models import STEMS
from rectifiers.transforms import MEAN_MODES


def _choices(command: str, flag: str) -> tuple[str, ...] | None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[command]._actions if flag in a.option_strings)
    return None if action.choices is None else tuple(action.choices)


@pytest.mark.parametrize(
    ("command", "flag", "declared"),
    [
        ("train", "--act", ACTIVATIONS),
        ("train", "--init", SCHEMES),
        ("train", "--init-mode", MODES),
        ("train", "--amp", AMP_MODES),
        ("models", "--act", ACTIVATIONS),
        ("models", "--stem", STEMS),
        ("init-report", "--act", ACTIVATIONS),
        ("init-report", "--init", SCHEMES),
        ("init-report", "--init-mode", MODES),
    ],
)
def test_cli_choices_are_the_declarations(command: str, flag: str, declared: tuple[str, ...]) -> None:
    assert _choices(command, flag) == tuple(declared)


@pytest.mark.parametrize(
    ("key", "declared"),
    [
        ("model.act", ACTIVATIONS),
        ("model.stem", STEMS),
        ("init.scheme", SCHEMES),
        ("init.mode", MODES),
        ("train.amp", AMP_MODES),
        ("data.mean", MEAN_MODES),
    ],
)
def test_config_accepts_exactly_the_declared_names(key: str, declared: tuple[str, ...]) -> None:
    section, name = key.split(".")
    for value in declared:
        config = RunConfig()
        setattr(getattr(config, section), name, value)
        config.validate()
    setattr(getattr(config, section), name, "nope")
    with pytest.raises(ValueError, match=rf"{key} must be one of {', '.join(declared)}; got 'nope'"):
        config.validate()


def test_models_rejects_an_unknown_activation_or_stem(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["models", "--act", "tanh"], ["models", "--stem", "tiny"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        assert "invalid choice" in capsys.readouterr().err


def test_a_bad_device_ends_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--device", "gpu0", "--max-steps", "1"]) == 2
    assert "error: train.device must be auto or a torch device" in capsys.readouterr().err
