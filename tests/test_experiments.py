"""`rectifiers.experiments` and `rectifiers reproduce`: every experiment in its smoke preset, the
numbers that need no training checked against the paper, and the helpers the experiments share."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rectifiers.cli import main
from rectifiers.experiments import PRESETS, list_experiments, load, run_experiment
from rectifiers.experiments.coefficients import CLAIMS, PAPER_SLOPES, depth_rho, spearman
from rectifiers.experiments.context import command_line
from rectifiers.experiments.convergence import statements
from rectifiers.experiments.subsets import subset
from rectifiers.experiments.tables import mean_std, pct_pm

NAMES = ["init-std", "complexity", "variance", "convergence", "coefficients", "relu-vs-prelu", "prelu-cost"]
WITH_FIGURE = {"variance", "convergence", "coefficients"}


def test_registry_lists_every_experiment_with_its_presets():
    assert list_experiments() == NAMES
    for name in NAMES:
        module = load(name)
        assert set(module.PRESETS) == set(PRESETS)
        assert module.TITLE and module.PAPER and callable(module.run)


@pytest.mark.parametrize("name", NAMES)
def test_smoke_run_writes_results_table_and_figure(name, tmp_path):
    table_path = run_experiment(name, "smoke", out=tmp_path)
    out = tmp_path / name
    assert table_path == out / "table.md"
    record = json.loads((out / "results.json").read_text())
    assert record["experiment"] == name and record["preset"] == "smoke"
    assert record["command"] == f"rectifiers reproduce {name} --preset smoke --out {tmp_path}"
    meta = record["metadata"]
    assert meta["torch"] == str(torch.__version__)
    assert {"cpu", "cores", "torch_threads"} <= set(meta["machine"])
    assert "git" in meta and record["wall_s"] >= 0
    assert record["results"]
    table = table_path.read_text()
    assert record["command"] in table
    assert "## Paper vs ours" in table
    if name in WITH_FIGURE:
        assert (out / f"{name}.png").stat().st_size > 0
        assert f"({name}.png)" in table


def test_init_std_matches_the_paper(tmp_path):
    record = json.loads(
        (run_experiment("init-std", "smoke", out=tmp_path).parent / "results.json").read_text()
    )
    res = record["results"]
    paper = {int(k): v for k, v in res["paper_std"].items()}
    assert [layer["filters"] for layer in res["layers"]] == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    for layer in res["layers"]:
        assert round(layer["std"], 3) == paper[layer["filters"]]
        assert layer["std"] == pytest.approx(math.sqrt(2 / (9 * layer["filters"])))
    # 1 / prod over conv2..conv10 of sqrt(2 / (9 d)) / 0.01
    expected = math.prod(0.01 / math.sqrt(2 / (9 * d)) for d in [64, 128, 128, 256, 256, 512, 512, 512, 512])
    assert res["attenuation"] == pytest.approx(expected, rel=1e-9)
    assert 1 / res["attenuation"] == pytest.approx(1.7e4, rel=0.02)


def test_complexity_matches_table_3(tmp_path):
    record = json.loads(
        (run_experiment("complexity", "smoke", out=tmp_path).parent / "results.json").read_text()
    )
    res = record["results"]
    for name in ("vgg19", "model_a", "model_b", "model_c", "net14", "net30"):
        assert res[name]["depth"] == res[name]["paper_depth"]
    for name in ("vgg19", "model_a", "model_b", "model_c"):
        assert abs(res[name]["relative_diff"]) <= 0.02


def test_variance_scaling_leaves_ratios_unchanged():
    from rectifiers.diagnostics import signal_variance
    from rectifiers.experiments.variance import _build, _Scaled
    from rectifiers.init import initialize

    settings = {"width": 0.0625, "fc_width": 16}
    net = _build("net22", settings, "circular")
    initialize(net, scheme="he", mode="fan_in", generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    plain = signal_variance(net, x, generator=torch.Generator().manual_seed(2))
    scaled = signal_variance(_Scaled(net, 1e3), x * 1e-2, generator=torch.Generator().manual_seed(2))
    assert scaled.forward_ratio == pytest.approx(plain.forward_ratio, rel=1e-3)
    assert scaled.backward_ratio == pytest.approx(plain.backward_ratio, rel=1e-3)
    assert scaled.rows[0].var_y == pytest.approx(plain.rows[0].var_y * 1e-4, rel=1e-3)


def test_circular_padding_gives_every_response_full_connections():
    from rectifiers.experiments.variance import _build

    net = _build("net22", {"width": 0.0625, "fc_width": 16}, "circular")
    padded = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and any(m.padding)]
    assert padded and all(m.padding_mode == "circular" for m in padded)
    assert net(torch.randn(1, 3, 28, 28)).shape == (1, 10)


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'nope'.*init-std"):
        run_experiment("nope", out=tmp_path)
    with pytest.raises(ValueError, match="unknown preset"):
        run_experiment("init-std", "huge", out=tmp_path)
    with pytest.raises(ValueError, match="uses no data"):
        run_experiment("complexity", "smoke", data="mnist5k", out=tmp_path)
    with pytest.raises(ValueError, match="no seeds"):
        run_experiment("init-std", "smoke", seeds=3, out=tmp_path)
    with pytest.raises(ValueError, match="positive integer"):
        run_experiment("convergence", "smoke", seeds=0, out=tmp_path)


def test_cli_list_run_and_error(tmp_path, capsys):
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in NAMES) and "full" in listed
    assert main(["reproduce", "init-std", "--preset", "smoke", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "0.059" in printed and "rectifiers reproduce init-std --preset smoke" in printed
    assert main(["reproduce", "nope"]) == 2
    assert "unknown experiment" in capsys.readouterr().err


def test_command_line_is_the_reproducing_command():
    assert command_line("variance", "full") == "rectifiers reproduce variance --preset full"
    assert command_line("convergence", "quick", data="mnist5k", out="res", seeds=2) == (
        "rectifiers reproduce convergence --preset quick --data mnist5k --seeds 2 --out res"
    )


def test_subset_is_class_balanced_and_written_once(tmp_path, monkeypatch):
    from rectifiers.data import open_dataset

    monkeypatch.setenv("RECTIFIERS_CACHE", str(tmp_path))
    spec = "fake:n=40,val=20,size=8,classes=4,channels=3"
    assert subset(spec, None, None) == (spec, {"train": 40, "val": 20})
    small, sizes = subset(spec, 20, 8)
    assert small.startswith("folder:") and sizes == {"train": 20, "val": 8}
    train = open_dataset(small, "train", cache=False)
    assert len(train) == 20 and torch.bincount(train.targets).tolist() == [5, 5, 5, 5]
    assert torch.bincount(open_dataset(small, "val", cache=False).targets).tolist() == [2, 2, 2, 2]
    done = tmp_path / "subsets" / small.rsplit("/", 1)[1] / "done"
    stamp = done.stat().st_mtime_ns
    assert subset(spec, 20, 8)[0] == small and done.stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="one image per class"):
        subset(spec, 3, None)


def test_spearman_and_table_1_claims_on_the_papers_numbers():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 1, 2]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    for i in (0, 1):  # channel-shared, channel-wise: every reading holds, with the sign it claims
        paper = {n: v[i] for n, v in PAPER_SLOPES.items()}
        assert all(statistic(paper) * sign > 0 for _, statistic, sign in CLAIMS)
    channel_wise = {n: v[1] for n, v in PAPER_SLOPES.items()}
    assert depth_rho(channel_wise) < -0.5
    assert depth_rho(dict.fromkeys(PAPER_SLOPES, 0.25)) == 0.0


def test_convergence_statements_on_made_up_curves():
    chance = 0.9
    converged, stalled, slow = [0.8, 0.5, 0.3, 0.3], [0.9, 0.9, 0.9, 0.9], [0.9, 0.85, 0.4, 0.3]
    per_seed = {
        "net22": {"he": [converged, converged], "xavier": [slow, slow]},
        "net30": {"he": [converged, slow], "xavier": [stalled, stalled]},
    }
    (both, both_v), (earlier, earlier_v), (he30, he30_v), (stall, stall_v) = statements(per_seed, chance)
    assert "both converge" in both and both_v == pytest.approx([0.5, 0.5])  # 0.9 - 0.1 - 0.3
    assert "earlier" in earlier and earlier_v == pytest.approx([0.1, 0.1])  # first epoch: 0.9 - 0.8
    assert "30 layers: He converges" in he30 and he30_v == pytest.approx([0.5, 0.5])
    assert "stalls" in stall and stall_v == pytest.approx([0.05, 0.05])  # never below 0.85


def test_small_helpers():
    assert mean_std([1.0]) == (1.0, 0.0)
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert pct_pm([0.5]) == "50.00" and pct_pm([0.1, 0.3]) == "20.00 ± 14.14"


def test_experiments_do_not_import_each_other():
    # Table 1 reads Table 2's runs through the module both share, not through Table 2's module: an
    # experiment changed for its own table must not change another's.
    import ast
    from pathlib import Path

    import rectifiers.experiments as package
    from rectifiers.experiments import EXPERIMENTS

    modules = {f"rectifiers.experiments.{m}" for m in EXPERIMENTS.values()}
    for name, module in EXPERIMENTS.items():
        tree = ast.parse((Path(package.__file__).parent / f"{module}.py").read_text())
        imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        others = sorted(imported & (modules - {f"rectifiers.experiments.{module}"}))
        assert not others, f"{name} imports {others}"


def test_prelu_cost_names_the_precision_its_trainer_step_ran_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CPU without usable bf16 trains in float32: the table must not say bf16 autocast.
    from rectifiers import step_timing
    from rectifiers.amp import AmpChoice
    from rectifiers.experiments import prelu_cost

    monkeypatch.setattr(prelu_cost, "train", lambda *args: {"metrics": [{"images_per_s": 1.0}]})
    monkeypatch.setattr(step_timing, "resolve_amp", lambda *args, **kwargs: AmpChoice(None, "no bf16 here"))
    run_experiment("prelu-cost", "smoke", out=tmp_path)
    trainer_rows = [
        r for r in (tmp_path / "prelu-cost" / "table.md").read_text().splitlines() if "trainer step" in r
    ]
    assert trainer_rows and all("float32" in r and "bf16" not in r for r in trainer_rows), trainer_rows
