"""`rectifiers init-report`: the demo net's init and variance tables, and a registered model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rectifiers.cli import main


def test_demo_prints_init_and_variance_tables_and_saves_plot(tmp_path: Path, capsys) -> None:
    plot, out = tmp_path / "variance.png", tmp_path / "report.json"
    argv = ["init-report", "--depth", "4", "--width", "64", "--batch", "32", "--draws", "3"]
    rc = main([*argv, "--plot", str(plot), "--json", str(out), "--std", "0.01"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "demo: plain 4-layer MLP, width 64" in text
    assert "init: scheme=he mode=fan_out (4 weight layers)" in text
    assert "3 independent draws" in text and "Var[y_L]/Var[y_1]" in text
    assert "std 0.01 on fc2 .. fc4" in text
    assert plot.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(out.read_text())
    assert [row["name"] for row in data["init"]["layers"]] == ["fc1", "fc2", "fc3", "fc4"]
    assert data["variance"]["draws"] == 3
    # fc2..fc4 have n̂ = 64 and ReLU after them: each contributes 0.01·sqrt(64/2).
    assert data["attenuation"]["backward"] == pytest.approx((0.01 * 32**0.5) ** 3)


def test_demo_xavier_conv_single_draw(capsys) -> None:
    argv = ["init-report", "--net", "conv", "--depth", "3", "--width", "8", "--batch", "2"]
    rc = main([*argv, "--draws", "1", "--scheme", "xavier", "--mode", "fan_in"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "convnet (circular padding), width 8" in text and "xavier fan_in" in text
    assert "Eq.12" in text  # the single-draw table has every column


def test_bad_arguments_end_in_one_line(capsys) -> None:
    assert main(["init-report", "--depth", "2", "--width", "8", "--a", "steep"]) == 2
    assert "--a takes 'auto' or a number" in capsys.readouterr().err
    assert main(["init-report", "--depth", "2", "--width", "8", "--scheme", "gaussian"]) == 2
    assert "needs a non-negative std" in capsys.readouterr().err


def test_model_vgg_b_paper_stds_and_attenuation(tmp_path: Path, capsys) -> None:
    pytest.importorskip("rectifiers.models")
    out = tmp_path / "vgg_b.json"
    rc = main(["init-report", "vgg_b", "--act", "relu", "--std", "0.01", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "vgg_b: init: scheme=he mode=fan_out" in text
    data = json.loads(out.read_text())
    convs = [row for row in data["init"]["layers"] if row["kind"] == "Conv2d"]
    assert [round(row["std"], 3) for row in convs] == [0.059] * 2 + [0.042] * 2 + [0.029] * 2 + [0.021] * 4
    assert all(row["measured_std"] is None for row in convs)  # built on the meta device
    att = data["attenuation"]
    assert att["from"] == convs[1]["name"] and att["to"] == convs[-1]["name"]
    assert 1 / att["backward"] == pytest.approx(1.7e4, rel=0.03)  # paper Sec. 2.2
    assert main(["init-report", "vgg_b", "--plot", str(tmp_path / "x.png")]) == 2
    assert "meta device" in capsys.readouterr().err


def test_init_flags_are_trains_and_the_old_names_are_hidden_aliases(capsys) -> None:
    argv = ["init-report", "--net", "conv", "--depth", "3", "--width", "8", "--batch", "2", "--draws", "1"]
    assert main([*argv, "--init", "xavier", "--init-mode", "fan_in"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0]  # the init table, before the measurements
    assert "init: scheme=xavier mode=fan_in" in table
    assert main([*argv, "--scheme", "xavier", "--mode", "fan_in"]) == 0
    assert capsys.readouterr().out.split("\n\n")[0] == table
    with pytest.raises(SystemExit):
        main(["init-report", "--help"])
    shown = capsys.readouterr().out
    assert "--init {" in shown and "--init-mode {" in shown
    assert "--scheme" not in shown and "--mode" not in shown
