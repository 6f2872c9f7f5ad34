"""The paper's tables and figures, re-measured: one module per experiment, run by
`rectifiers reproduce NAME --preset smoke|quick|full`.

    init-std        Sec. 2.2: VGG model B's Eq. 14 stds and the 1/(1.7·10⁴) attenuation of std 0.01
    complexity      Table 3: depth and multiply-adds of VGG-19 and models A, B, C
    variance        Eq. 9 / 13: forward and backward signal variance of the 22- and 30-layer nets
    convergence     Figures 2 and 3: He vs Xavier init on 22- and 30-layer ReLU nets
    coefficients    Table 1: the learned PReLU slopes of the 14-layer net
    relu-vs-prelu   Table 2: ReLU vs channel-shared vs channel-wise PReLU, ten-view error
    prelu-cost      Sec. 2.1: PReLU's "negligible" cost, as a train-step throughput ratio

Each module defines `TITLE`, `PAPER` (where in the paper), `USES_DATA`, `USES_SEEDS`, `PRESETS`
(settings per preset) and `run(ctx) -> Outcome`; it composes the library, has no training loop of its
own and imports no other experiment. The other modules here are what they share (`context`, `recipe`,
`runs`, `verdict`, `outputs`, ...).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from rectifiers.experiments.context import PRESETS, Context, command_line
from rectifiers.experiments.outputs import write_outputs
from rectifiers.experiments.recipe import default_training_data, fallback_banner

# name -> module under rectifiers.experiments
EXPERIMENTS: dict[str, str] = {
    "init-std": "init_std",
    "complexity": "complexity",
    "variance": "variance",
    "convergence": "convergence",
    "coefficients": "coefficients",
    "relu-vs-prelu": "relu_vs_prelu",
    "prelu-cost": "prelu_cost",
}

__all__ = ["EXPERIMENTS", "PRESETS", "list_experiments", "load", "run_experiment"]


def list_experiments() -> list[str]:
    """The experiment names, in the order of the paper."""
    return list(EXPERIMENTS)


def load(name: str) -> ModuleType:
    """The module of experiment `name`; an unknown name raises ValueError listing the known ones."""
    module = EXPERIMENTS.get(name)
    if module is None:
        raise ValueError(f"unknown experiment {name!r}; experiments: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"rectifiers.experiments.{module}")


def run_experiment(
    name: str,
    preset: str = "quick",
    *,
    data: str | None = None,
    out: str | Path = "results",
    seeds: int | None = None,
    say: Callable[[str], None] | None = None,
    fresh: bool = False,
) -> Path:
    """Run experiment `name` with `preset` and write `out/name/` (results.json, table.md, figure).

    Args:
        preset: "smoke" (seconds, for tests), "quick" (about a minute on 2 CPU cores) or "full"
            (what the README reports).
        data: a data spec for the experiments that train (default: the preset's: CIFAR-10 from
            $RECTIFIERS_CIFAR10 or the shared data folder, else mnist5k, which `say` announces and
            table.md's header notes as a fallback; smoke: tiny fake images).
        seeds: how many seeds (training runs per setting, or random draws for `variance`).
        say: receives progress lines.
        fresh: delete the training runs of earlier invocations; by default a finished run with the
            same settings is reused and an interrupted one continued from its checkpoint (a run of
            other settings is refused). Raises `RunNotFinished` when a run stops early (Ctrl-C).

    Returns the path of `table.md`. Bad arguments raise ValueError.
    """
    module = load(name)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    if data is not None and not module.USES_DATA:
        raise ValueError(f"{name} uses no data set; --data does not apply to it")
    if seeds is not None and not module.USES_SEEDS:
        raise ValueError(f"{name} has no seeds; --seeds does not apply to it")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    settings = dict(module.PRESETS[preset])
    if seeds is not None:
        settings["seeds"] = seeds
    spec, note = None, ""
    if module.USES_DATA:
        spec = data or settings.get("data")
        if spec is None:
            spec, note = default_training_data()
    ctx = Context(
        name=name,
        preset=preset,
        settings=settings,
        out=Path(out) / name,
        command=command_line(name, preset, data=data, out=out, seeds=seeds),
        data=spec,
        seeds=list(range(settings["seeds"])) if "seeds" in settings else [],
        say=say or (lambda text: None),
        data_note=note,
        fresh=fresh,
    )
    if note:
        ctx.say(fallback_banner(note))
    started = time.perf_counter()
    outcome = module.run(ctx)
    wall = time.perf_counter() - started
    return write_outputs(ctx, module.TITLE, module.PAPER, outcome, wall)
