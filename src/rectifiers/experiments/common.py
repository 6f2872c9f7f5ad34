"""What every experiment shares: its context, the files it writes, the training recipe of the
small-scale experiments, data subsets, and small statistics and table helpers.

An experiment writes `OUT/NAME/`:

    results.json  the numbers, plus run metadata: preset, settings, seeds, data, the command, git
                  revision, torch and Python versions, machine, wall time
    table.md      the paper's numbers beside ours, the command that made ours, and plainly where
                  they disagree
    NAME.png      the figure, where the paper has one
    runs/PRESET/  the training runs it made (`rectifiers.engine.fit` run directories), kept: a
                  second invocation reuses the finished ones and continues an interrupted one

Nothing here trains by itself: `train` hands a `RunConfig` to `rectifiers.engine.fit`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rectifiers import cifar10, runtime
from rectifiers.machine import cpu_isa, cpu_model

PRESETS = ("smoke", "quick", "full")

# The recipe of every training experiment, on top of the `default` preset (small-image net14
# family, width 0.25, fc 256, SGD lr 0.01, momentum 0.9, weight decay 5e-4 except on slopes, batch
# 128). He's init in its Eq. 10 form with a = 0 on every layer, conv1 included: the paper's choice
# ("we also adopt Eq. (10) in the first layer for simplicity"), and one std per layer for ReLU and
# PReLU alike, so runs of one seed start from the same weights whatever the activation.
# The input side follows Table 2's "resized so that the shorter side is 256 ... each view is 224":
# shorter side 32, crops of 28 (the same 0.875), no scale jitter; half the training crops flipped
# (Sec. 3). Validation is the center crop of the
# 32-px image; ten-view testing takes its four corners and center, each flipped.
RECIPE: dict[str, Any] = {
    "data.crop": 28,
    "data.scale_min": 32,
    "data.scale_max": 32,
    "data.eval_resize": 32,
    "data.flip": 0.5,
    "data.pca_std": 0.0,
    "model.stem": "small",
    "model.width": 0.25,
    "model.fc_width": 256,
    "init.scheme": "he",
    "init.mode": "fan_in",
    "init.a": 0.0,
    "train.batch_size": 128,
}

# Tiny data and nets for the smoke preset (seconds; what the test suite runs).
SMOKE_DATA = "fake:n=64,val=32,size=32,classes=4,channels=3"
SMOKE_MODEL: dict[str, Any] = {"model.width": 0.0625, "model.fc_width": 16, "train.batch_size": 32}


def shared_data_dir() -> Path:
    """`shared/data` beside the repository (where this checkout keeps its real data sets)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def default_training_data() -> tuple[str, str]:
    """The data of the experiments that train, and a note when it is not CIFAR-10 ("" when it is).

    CIFAR-10 as distributed, where $RECTIFIERS_CIFAR10 points at it; else the copy in the shared data
    folder beside this checkout; else the embedded mnist5k, whose numbers the README's tables (made
    on CIFAR-10) cannot be compared with: hence the note, which the run says and table.md keeps.
    """
    if os.environ.get(cifar10.ENV):
        return "cifar10", ""
    shared = shared_data_dir() / "cifar10" / "CIFAR-10-images.zip"
    if shared.is_file():
        return f"folder:{shared}", ""
    return "mnist5k", (
        f"no CIFAR-10 found (set {cifar10.ENV} to cifar-10-python.tar.gz, see the README's CIFAR-10 "
        "section, or pass --data): this run trained on mnist5k instead, so its numbers are not "
        "comparable with the README's tables"
    )


def fallback_banner(note: str) -> str:
    """`note` framed so that it stands out among the progress lines."""
    rule = "!" * 100
    return f"{rule}\nDATA FALLBACK: {note}\n{rule}"


# --------------------------------------------------------------------------------------- context


@dataclass
class Context:
    """Everything an experiment's `run` needs: its settings and where to write."""

    name: str
    preset: str
    settings: dict[str, Any]  # the preset's settings (after --seeds)
    out: Path  # OUT/NAME
    command: str  # the command line that reproduces this run
    data: str | None = None  # the data spec (None for experiments without data)
    seeds: list[int] = field(default_factory=list)
    say: Callable[[str], None] = lambda text: None  # progress lines (the CLI prints them)
    data_note: str = ""  # set when the data is a fallback for the data the experiment is meant for
    fresh: bool = False  # delete the training runs of earlier invocations instead of reusing them

    def run_dir(self, name: str) -> Path:
        """Where this experiment keeps its training run `name` of this preset."""
        return self.out / "runs" / self.preset / name


@dataclass
class Outcome:
    """What an experiment returns: its numbers, the side-by-side table and the verdicts."""

    results: dict[str, Any]  # JSON-able
    table: str  # markdown: the paper's numbers beside ours
    notes: list[str] = field(default_factory=list)  # agreements and disagreements, one line each
    setup: list[str] = field(default_factory=list)  # what was run, one line each (data, sizes, ...)
    figures: list[Path] = field(default_factory=list)


def command_line(
    name: str, preset: str, data: str | None = None, out: str | Path | None = None, seeds: int | None = None
) -> str:
    """The `rectifiers reproduce` command that runs `name` with these arguments."""
    parts = ["rectifiers", "reproduce", name, "--preset", preset]
    if data is not None:
        parts += ["--data", data]
    if seeds is not None:
        parts += ["--seeds", str(seeds)]
    if out is not None and Path(out) != Path("results"):
        parts += ["--out", str(out)]
    return " ".join(parts)


# ------------------------------------------------------------------------------------- metadata


def git_revision() -> dict[str, Any] | None:
    """HEAD's commit and whether tracked files differ from it; None outside a git checkout."""
    repo = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def machine() -> dict[str, Any]:
    """The machine a run used: CPU, cores, torch threads, OS, accelerator."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    info["amx"] = cpu_isa().amx  # AMX tiles speed up bf16 training severalfold
    return info


def metadata() -> dict[str, Any]:
    from rectifiers import __version__

    return {
        "rectifiers": __version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "git": git_revision(),
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------------------- output


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    if isinstance(value, torch.Tensor):
        return _jsonable(value.tolist())
    return value


def write_outputs(ctx: Context, title: str, paper_ref: str, outcome: Outcome, wall_s: float) -> Path:
    """Write `results.json` and `table.md` into `ctx.out`; returns the table's path."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    meta = metadata()
    record = {
        "experiment": ctx.name,
        "title": title,
        "paper": paper_ref,
        "preset": ctx.preset,
        "command": ctx.command,
        "data": ctx.data,
        "data_note": ctx.data_note,
        "seeds": ctx.seeds,
        "settings": ctx.settings,
        "setup": outcome.setup,
        "wall_s": wall_s,
        "metadata": meta,
        "results": outcome.results,
        "notes": outcome.notes,
        "figures": [p.name for p in outcome.figures],
    }
    (ctx.out / "results.json").write_text(json.dumps(_jsonable(record), indent=1) + "\n")

    git = meta["git"]
    revision = (
        "unknown" if git is None else git["commit"][:10] + (" (with local changes)" if git["dirty"] else "")
    )
    lines = [
        f"# {title}",
        "",
        f"Paper: {paper_ref}. Ours: made by",
        "",
        "```",
        ctx.command,
        "```",
        "",
    ]
    if ctx.data_note:
        lines += [f"> **Data fallback:** {ctx.data_note}.", ""]
    if outcome.setup:
        lines += ["Setup:", "", *[f"- {s}" for s in outcome.setup], ""]
    lines += [outcome.table.rstrip(), ""]
    if outcome.notes:
        lines += ["## Paper vs ours", "", *[f"- {n}" for n in outcome.notes], ""]
    lines += [f"![{ctx.name}]({p.name})" for p in outcome.figures]
    if outcome.figures:
        lines.append("")
    m = meta["machine"]
    lines.append(
        f"_Preset `{ctx.preset}`; {wall_s / 60:.1f} min wall time on {m['cpu']} ({_amx_text(m)}"
        f"{m['torch_threads']} torch threads); torch {meta['torch']}, rectifiers {meta['rectifiers']}, "
        f"git {revision}; {meta['date']}._"
    )
    path = ctx.out / "table.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _amx_text(machine_info: dict[str, Any]) -> str:
    amx = machine_info.get("amx")
    return "" if amx is None else ("with AMX, " if amx else "no AMX, ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A markdown table; `align` is one character per column, "l" or "r" (default: first left)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:"}
    out = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    out += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def pct(value: float, digits: int = 2) -> str:
    return f"{100 * value:.{digits}f}"


def pct_pm(values: Sequence[float], digits: int = 2) -> str:
    """'mean ± std' in percent ('mean' alone for one value)."""
    m, s = mean_std(values)
    return f"{100 * m:.{digits}f}" + (f" ± {100 * s:.{digits}f}" if len(values) > 1 else "")


# ------------------------------------------------------------------------------------------- data


def describe_data(data: str, spec: str, sizes: dict[str, int]) -> str:
    """The setup's data sentence: the spec asked for and, where `subset` cut it, the subset's sizes."""
    counts = f"{sizes['train']:,} train / {sizes['val']:,} val images"
    if spec != data:
        return f"Data: `{data}`, class-balanced subset: {counts}"
    return f"Data: `{data}` ({counts})"


def subset(spec: str, n_train: int | None, n_val: int | None, seed: int = 0) -> tuple[str, dict[str, int]]:
    """A class-balanced subset of `spec`: at most `n_train` / `n_val` images (None: all), the same
    number from every class, picked by a seeded permutation.

    Returns (spec, sizes). When both splits already fit, `spec` itself; otherwise the subset is
    written once as PNG files in the ImageNet folder layout (`train/<class>/`, `val/<class>/`) under
    `$RECTIFIERS_CACHE/subsets/` (default `~/.cache/rectifiers`) and `folder:<that directory>` is
    returned, so that `rectifiers.engine.fit` and `rectifiers.evaluate` read it like any data set.
    A 1-channel source becomes 3-channel (grayscale replicated), as every image folder does.
    """
    from rectifiers.data import open_dataset

    splits = {"train": open_dataset(spec, "train"), "val": open_dataset(spec, "val")}
    caps = {"train": n_train, "val": n_val}
    picks: dict[str, torch.Tensor] = {}
    for split, ds in splits.items():
        cap, k = caps[split], len(ds.classes)
        if cap is not None and cap < k:
            raise ValueError(f"a subset needs at least one image per class: {split} cap {cap} < {k} classes")
        if cap is None or cap >= len(ds):
            picks[split] = torch.arange(len(ds))
            continue
        order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
        per_class = cap // k
        chosen = [order[ds.targets[order] == c][:per_class] for c in range(k)]
        picks[split] = torch.cat(chosen).sort().values
    sizes = {split: len(idx) for split, idx in picks.items()}
    if all(sizes[s] == len(splits[s]) for s in splits):
        return spec, sizes
    key = hashlib.sha1(f"{spec}|{n_train}|{n_val}|{seed}".encode()).hexdigest()[:16]
    root = runtime.cache_root() / "subsets" / key
    if not (root / "done").is_file():
        _write_folder(splits, picks, root)
    return f"folder:{root}", sizes


def _write_folder(splits: dict[str, Any], picks: dict[str, torch.Tensor], root: Path) -> None:
    from PIL import Image

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".subset-", dir=root.parent))
    try:
        for split, ds in splits.items():
            width = len(str(len(ds)))
            for i in picks[split].tolist():
                image, label = ds[i]
                folder = tmp / split / ds.classes[label]
                folder.mkdir(parents=True, exist_ok=True)
                array = image.permute(1, 2, 0).numpy()
                pil = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
                pil.save(folder / f"{i:0{width}d}.png")
        (tmp / "done").write_text("complete\n")
        if root.exists():  # an unfinished earlier attempt
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------ train

# Settings that do not change what a finished run computed: where it lives, how it was resumed,
# whether it printed, where an earlier invocation asked it to pause.
_NOT_SETTINGS = {"train": ("out", "resume", "quiet", "max_steps")}
FINISHED = "finished.json"  # written into a run directory once its training completed


class RunNotFinished(RuntimeError):
    """A training run stopped before its last epoch (a stop signal, train.max_steps); its checkpoint
    is kept, and the same command continues it."""


def revision() -> str:
    """`git describe` of this checkout (with "-dirty" for local changes), else the package version."""
    from rectifiers import __version__

    repo = Path(__file__).resolve().parents[3]
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "describe", "--tags", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is not None and done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    return f"rectifiers {__version__}"


def run_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config without the entries that `_NOT_SETTINGS` names: what two runs must share to be
    the same run."""
    return {
        section: {k: v for k, v in values.items() if k not in _NOT_SETTINGS.get(section, ())}
        for section, values in config.items()
    }


def _differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    from rectifiers.config import flatten

    a, b = flatten(run_settings(saved)), flatten(run_settings(wanted))
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def train(ctx: Context, run_dir: Path, overrides: dict[str, Any]) -> dict[str, Any]:
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
    finished = run_dir / FINISHED
    for earlier in (finished, run_dir / "config.json"):
        if earlier.is_file():
            saved = json.loads(earlier.read_text())
            differ = _differences(saved.get("config", saved), wanted)
            if differ:
                raise ValueError(
                    f"{run_dir} holds a run made with other settings ({', '.join(differ)}); "
                    "pass --fresh to start the experiment over, or --out for another folder"
                )
            break
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
        finished.write_text(json.dumps(_jsonable(record), indent=1) + "\n")
    metrics = read_jsonl(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
    if metrics:
        last = metrics[-1]
        ctx.say(
            f"[{ctx.name}]   {run_dir.name}: val top-1 err {pct(last['val_top1_err'])}% after epoch "
            f"{last['epoch']}"
        )
    return {
        "config": record["config"],
        "result": record["result"],
        "metrics": metrics,
        "run_dir": str(run_dir),
        "revision": record["revision"],
    }


def schedule(settings: dict[str, Any]) -> dict[str, Any]:
    """A preset's fixed-epoch lr schedule (its "milestones": lr ÷ 10 after each), as config overrides."""
    if settings["milestones"]:
        return {"optim.schedule": "milestones", "optim.milestones": settings["milestones"]}
    return {"optim.schedule": "constant"}


def schedule_text(settings: dict[str, Any]) -> str:
    """'lr 0.01 ÷ 10 after epochs 5, 7' or 'lr 0.01 constant'."""
    if settings["milestones"]:
        return f"lr 0.01 ÷ 10 after epochs {', '.join(map(str, settings['milestones']))}"
    return "lr 0.01 constant"


def runs_made_with(runs: Sequence[dict[str, Any]]) -> str:
    """The setup's sentence on the code revisions that finished `runs`."""
    revisions = sorted({r["revision"] for r in runs})
    if len(revisions) == 1:
        return f"All {len(runs)} runs finished at revision `{revisions[0]}`."
    by = {rev: [Path(r["run_dir"]).name for r in runs if r["revision"] == rev] for rev in revisions}
    return (
        "Runs finished at several revisions: "
        + "; ".join(f"`{rev}`: {', '.join(names)}" for rev, names in by.items())
        + "."
    )
