"""The experiments' training runs: one `rectifiers.engine.fit` run of the recipe, kept in its run
directory (a second invocation reuses a finished run and continues an interrupted one), and the
arms of a comparison, trained for every seed of the preset.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rectifiers.experiments.context import Context
from rectifiers.experiments.outputs import jsonable
from rectifiers.experiments.provenance import revision
from rectifiers.experiments.recipe import RECIPE, schedule
from rectifiers.experiments.subsets import subset
from rectifiers.experiments.tables import pct
from rectifiers.run_log import RESOLVED, RunLog

Run = dict[str, Any]  # what `train` returns

FINISHED = "finished.json"  # written into a run directory once its training completed
# Settings that do not change what a finished run computed: where it lives, how it was resumed,
# whether it printed, where an earlier invocation asked it to pause.
_NOT_SETTINGS = ("train.out", "train.resume", "train.quiet", "train.max_steps")


class RunNotFinished(RuntimeError):
    """A training run stopped before its last epoch (a stop signal, train.max_steps); its checkpoint
    is kept, and the same command continues it."""


def _differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The config keys whose values differ between two runs, leaving out `_NOT_SETTINGS`."""
    from rectifiers.config import flatten

    a, b = ({k: v for k, v in flatten(c).items() if k not in _NOT_SETTINGS} for c in (saved, wanted))
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def _refuse_other_settings(run_dir: Path, wanted: dict[str, Any]) -> None:
    """Raise ValueError when `run_dir` holds a run (finished or not) made with other settings."""
    for earlier in (run_dir / FINISHED, run_dir / "config.json"):
        if earlier.is_file():
            saved = json.loads(earlier.read_text())
            config = {k: v for k, v in saved.get("config", saved).items() if k != RESOLVED}
            differ = _differences(config, wanted)
            if differ:
                raise ValueError(
                    f"{run_dir} holds a run made with other settings ({', '.join(differ)}); "
                    "pass --fresh to start the experiment over, or --out for another folder"
                )
            return


def train(ctx: Context, run_dir: Path, overrides: dict[str, Any]) -> Run:
    """One `rectifiers.engine.fit` run of the experiment's recipe: the `default` preset, `RECIPE`,
    the preset's own `overrides` setting, then `overrides`; kept in `run_dir`.

    A run that finished in an earlier invocation with the same settings is reused as it is; an
    unfinished one continues from its newest checkpoint (`train.resume = auto`); one made with other
    settings is refused (ValueError naming them). `ctx.fresh` deletes the run first. Raises
    RunNotFinished when the run stops before its last epoch.

    Returns {"config", "result" (fit's return value), "metrics" (one dict per epoch), "run_dir",
    "revision" (of the code that finished the run)}.
    """
    from rectifiers.config import load_config
    from rectifiers.engine import fit
    from rectifiers.plots import read_jsonl

    if ctx.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    values = {
        **RECIPE,
        "data.spec": ctx.data,
        **ctx.settings.get("overrides", {}),
        **overrides,
        "train.out": str(run_dir),
        "train.resume": "auto",
        "train.quiet": True,
        "train.keep_last": 1,
    }
    config = load_config("default", values)
    wanted = config.to_dict()
    _refuse_other_settings(run_dir, wanted)
    finished = run_dir / FINISHED
    if finished.is_file():
        record = json.loads(finished.read_text())
        ctx.say(f"[{ctx.name}] reusing the finished run {run_dir.name} (revision {record['revision']})")
    else:
        ctx.say(
            f"[{ctx.name}] training {run_dir.name} ({config.model.name}, {config.model.act}, "
            f"{config.init.scheme} {config.init.mode}, {config.train.epochs} epochs)"
        )
        result = fit(config)
        if result["status"] != "completed":
            raise RunNotFinished(
                f"{run_dir} stopped ({result['status']}) at epoch {result['epoch']}, step {result['step']}; "
                "its checkpoint is kept: run the same command again to continue it"
            )
        record = {"revision": revision(), "config": wanted, "result": result}
        finished.write_text(json.dumps(jsonable(record), indent=1) + "\n")
    metrics = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
    if metrics:
        last = metrics[-1]
        ctx.say(
            f"[{ctx.name}]   {run_dir.name}: val top-1 err {pct(last['val_top1_err'])}% after epoch "
            f"{last['epoch']}"
        )
    return {**record, "metrics": metrics, "run_dir": str(run_dir)}


def train_arms(
    ctx: Context, arms: dict[str, dict[str, Any]], experiment: str | None = None
) -> tuple[str, dict[str, int], dict[str, list[Run]]]:
    """Train (or reuse) every arm of a comparison for every seed of `ctx.seeds`, seed by seed.

    Every run shares the preset's class-balanced subset of `ctx.data`, validation split, epochs and
    lr schedule, and its seed: the arms differ only in their `overrides` (`arms[name]`). Run ARM of
    seed S is kept as `ARM-seedS` among the runs of `experiment` (default: this one's).
    Returns (the data spec trained on, its split sizes, the runs of each arm in seed order).
    """
    settings = ctx.settings
    spec, sizes = subset(ctx.data or "", settings["n_train"], settings["n_val"])
    shared = {
        "data.spec": spec,
        "data.val_fraction": settings["val_fraction"],
        "train.epochs": settings["epochs"],
        **schedule(settings),
    }
    runs: dict[str, list[Run]] = {arm: [] for arm in arms}
    for seed in ctx.seeds:
        for arm, overrides in arms.items():
            run_dir = ctx.run_dir(f"{arm}-seed{seed}", experiment)
            runs[arm].append(train(ctx, run_dir, {**shared, **overrides, "train.seed": seed}))
    return spec, sizes, runs


def val_curve(run: Run) -> list[float]:
    """A run's held-out validation error per epoch."""
    return [m["val_top1_err"] for m in run["metrics"]]


def runs_made_with(runs: Sequence[Run]) -> str:
    """The setup's sentences on the code revisions that finished `runs` and the precisions they
    trained in (`train.amp = auto` chooses per model, so the arms of one table may differ)."""
    revisions = _grouped(runs, "finished at revision", "revision", lambda r: r["revision"])
    return f"{revisions} {_grouped(runs, 'trained in', 'precision', _precision)}"


def _precision(run: Run) -> str:
    return "/".join(dict.fromkeys(RunLog.precisions(run["run_dir"]))) or "unknown"


def _grouped(runs: Sequence[Run], verb: str, what: str, value: Callable[[Run], str]) -> str:
    """'All N runs VERB `v`.' when `value` is the same for every run, else the runs named by value."""
    by: dict[str, list[str]] = {}
    for run in runs:
        by.setdefault(value(run), []).append(Path(run["run_dir"]).name)
    if len(by) == 1:
        return f"All {len(runs)} runs {verb} `{next(iter(by))}`."
    return (
        f"Runs not all in one {what}: "
        + "; ".join(f"`{key}`: {', '.join(names)}" for key, names in sorted(by.items()))
        + "."
    )
