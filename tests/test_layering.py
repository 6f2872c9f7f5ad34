"""The package's one-way structure: benchmark code is a leaf only `rectifiers bench` imports, the CPU's
facts are read in one module, and `fit`, the step benchmark and `reproduce prelu-cost` run one step."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from helpers import tiny_overrides

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rectifiers"


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _is_bench_code(module: str) -> bool:
    return module == "rectifiers.bench" or module.startswith(("rectifiers.bench.", "rectifiers.bench_"))


def test_only_the_bench_command_imports_benchmark_code() -> None:
    bench_package = PACKAGE / "bench"
    importers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if not path.is_relative_to(bench_package) and any(_is_bench_code(m) for m in _imported_modules(path))
    )
    assert importers == ["cli/bench.py"]


def test_the_import_scan_sees_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from rectifiers.bench.step import x\n    import rectifiers.bench_step\n")
    assert {"rectifiers.bench.step", "rectifiers.bench_step"} <= _imported_modules(source)
    assert _is_bench_code("rectifiers.bench") and not _is_bench_code("rectifiers.benchmarks")


def test_proc_cpuinfo_is_read_by_machine_alone() -> None:
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "/proc/cpuinfo" in path.read_text()
    )
    assert readers == ["machine.py"]


@pytest.fixture
def step_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Calls of the trainer's step, split by whether `Trainer._train_epoch` made them."""
    from rectifiers import train_step
    from rectifiers.engine import Trainer

    calls = {"fit": 0, "elsewhere": 0}
    in_fit = {"now": False}
    real_step, real_epoch = train_step.TrainStep.__call__, Trainer._train_epoch

    def counted_step(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        calls["fit" if in_fit["now"] else "elsewhere"] += 1
        real_step(self, images, targets)

    def flagged_epoch(self: Trainer) -> object:
        in_fit["now"] = True
        try:
            return real_epoch(self)
        finally:
            in_fit["now"] = False

    monkeypatch.setattr(train_step.TrainStep, "__call__", counted_step)
    monkeypatch.setattr(Trainer, "_train_epoch", flagged_epoch)
    return calls


def test_fit_runs_the_one_train_step(step_calls: dict[str, int], tmp_path: Path) -> None:
    from rectifiers.config import load_config
    from rectifiers.engine import fit

    overrides = {"train.amp": "off", "train.epochs": "1", "train.max_steps": "3"}
    result = fit(load_config(None, tiny_overrides(tmp_path / "run", **overrides)))
    assert result["step"] == 3 and step_calls == {"fit": 3, "elsewhere": 0}


@pytest.mark.parametrize("act", ["prelu", "relu"])
def test_the_timed_trainer_step_is_the_one_train_step(step_calls: dict[str, int], act: str) -> None:
    from rectifiers.step_timing import StepCase, make_step

    case = StepCase(
        label="tiny", model="net14", width=0.125, fc_width=16, in_chans=1, size=16, classes=4, batch=4
    )
    step = make_step(case, f"trainer/{act}")
    step()
    step()
    make_step(case, f"plain/{act}")()  # a hand-written loop: not the trainer's step
    assert step_calls == {"fit": 0, "elsewhere": 2}


def test_prelu_cost_times_the_one_train_step(
    step_calls: dict[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rectifiers.experiments import prelu_cost, run_experiment

    # Its end-to-end fits are `fit` (tested above); stand-ins keep this test to the timed steps.
    monkeypatch.setattr(prelu_cost, "train", lambda *args: {"metrics": [{"images_per_s": 1.0}]})
    run_experiment("prelu-cost", "smoke", out=tmp_path)
    smoke = prelu_cost.PRESETS["smoke"]
    # the two trainer variants (ReLU, PReLU), each warmed up and timed
    assert step_calls == {"fit": 0, "elsewhere": 2 * (smoke["step_warmup"] + smoke["step_repeats"])}
