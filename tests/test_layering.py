"""The package's one-way structure (docs/ARCHITECTURE.md): every module sits in one layer and imports only
from its own layer or those below, with no import cycle; benchmark code is a leaf only `rectifiers bench`
imports; the CPU's facts are read in one module; and `fit`, the step benchmark and `reproduce prelu-cost`
run one step."""

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


# The layers of docs/ARCHITECTURE.md, lowest first. A new module must be placed here (the test fails until
# it is), which is where a reader learns what it may import.
LAYERS: dict[str, tuple[str, ...]] = {
    "foundation": (
        "rectifiers",
        "runtime",
        "atomic_file",
        "machine",
        "metrics",
        "distributed",
        "stop_signals",
        "rng_state",
        "interleave",
        "plots",
        "complexity",
        "decode",
        "cifar10",
        "text_table",
    ),
    "ops": ("prelu_kernel", "prelu_fast", "activations", "layers", "init", "optim"),
    "models and data": (
        "models",
        "demo_nets",
        "diagnostics",
        "layouts",
        "data",
        "holdout",
        "transforms",
        "views",
        "view_batches",
        "loader",
    ),
    "config": ("config", "sizes_from_data"),
    "training and evaluation": (
        "checkpoint",
        "checkpoint.store",
        "checkpoint.resume",
        "checkpoint.inference",
        "run_lock",
        "run_log",
        "amp",
        "train_step",
        "step_timing",
        "engine",
        "evaluate",
        "eval_results",
        "predict",
        "export",
    ),
    "experiments": ("experiments", "experiments.*"),
    "bench": ("bench", "bench.*"),
    "cli": ("cli", "cli.*", "__main__"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "rectifiers"


def _layer_of(module: str) -> int | None:
    for rank, members in enumerate(LAYERS.values()):
        for member in members:
            if module == member or (member.endswith(".*") and module.startswith(member[:-1])):
                return rank
    return None


def _imports_within_package(path: Path, known: set[str]) -> set[str]:
    """The package's modules ``path`` imports, relative to the package (`from rectifiers import data` is
    ``data``; the package itself is ``rectifiers``)."""
    found = set()
    for name in _imported_modules(path):
        if name == "rectifiers" or name.startswith("rectifiers."):
            short = name.removeprefix("rectifiers.") if name != "rectifiers" else "rectifiers"
            while short not in known and "." in short:  # `from m import f` names m.f: keep m
                short = short.rsplit(".", 1)[0]
            if short in known:
                found.add(short)
    return found


def _import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {m: _imports_within_package(p, known) - {m} for m, p in paths.items()}


def test_every_module_has_a_layer() -> None:
    assert [m for m in sorted(_import_graph()) if _layer_of(m) is None] == []


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{module} ({list(LAYERS)[_layer_of(module)]}) imports {dep} ({list(LAYERS)[_layer_of(dep)]})"
        for module, deps in sorted(_import_graph().items())
        for dep in sorted(deps)
        if _layer_of(module) is not None and _layer_of(dep) is not None and _layer_of(dep) > _layer_of(module)
    ]
    assert upward == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (its strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    # The package root re-exports lazily (on attribute access), so importing it names no module.
    graph = {m: deps - {"rectifiers"} for m, deps in _import_graph().items()}
    assert _cycles(graph) == []


def test_the_layer_checks_can_fail() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer_of("engine") > _layer_of("models") and _layer_of("experiments.verdict") is not None
    assert _layer_of("no_such_module") is None


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
