"""`rectifiers reproduce` without CIFAR-10: the fallback to mnist5k is said loudly and written into
table.md's header (the numbers are then not comparable with the README's tables)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from rectifiers import experiments
from rectifiers.experiments import context, recipe


def _stub_experiment() -> types.ModuleType:
    """An experiment that trains nothing and reports the data it was given."""
    module = types.ModuleType("stub")
    module.TITLE, module.PAPER = "Stub", "nowhere"
    module.USES_DATA, module.USES_SEEDS = True, False
    module.PRESETS = {preset: {"summary": "stub"} for preset in context.PRESETS}
    module.run = lambda ctx: context.Outcome(results={"data": ctx.data}, table="| a |\n|---|\n| 1 |")
    return module


@pytest.fixture
def no_cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECTIFIERS_CIFAR10", raising=False)
    monkeypatch.setattr(recipe, "shared_data_dir", lambda: tmp_path / "absent")
    monkeypatch.setattr(experiments, "load", lambda name: _stub_experiment())


def test_the_fallback_is_said_and_written_into_the_table(tmp_path: Path, no_cifar: None) -> None:
    said: list[str] = []
    table = experiments.run_experiment("stub", "full", out=tmp_path, say=said.append)
    assert any(
        "DATA FALLBACK" in line and "mnist5k" in line and "RECTIFIERS_CIFAR10" in line for line in said
    )
    header = table.read_text().split("| a |")[0]
    assert "Data fallback" in header and "mnist5k" in header and "not comparable" in header


def test_cifar10_from_the_environment_is_no_fallback(tmp_path: Path, no_cifar: None, monkeypatch) -> None:
    monkeypatch.setenv("RECTIFIERS_CIFAR10", str(tmp_path / "cifar-10-python.tar.gz"))
    said: list[str] = []
    table = experiments.run_experiment("stub", "full", out=tmp_path, say=said.append)
    assert not any("FALLBACK" in line for line in said) and "fallback" not in table.read_text()
    assert '"data": "cifar10"' in (table.parent / "results.json").read_text()


def test_data_given_on_the_command_line_is_no_fallback(tmp_path: Path, no_cifar: None) -> None:
    table = experiments.run_experiment("stub", "full", data="mnist5k", out=tmp_path)
    assert "fallback" not in table.read_text()
