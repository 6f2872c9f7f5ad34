"""What an experiment's `run` is given (its context) and what it returns (its outcome)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

Preset = Literal["smoke", "quick", "full"]
PRESETS: tuple[Preset, ...] = get_args(Preset)


def same_for_every_preset(summary: str) -> dict[str, dict[str, Any]]:
    """The presets of an experiment that trains nothing: one setting, whatever the preset."""
    return {preset: {"summary": summary} for preset in PRESETS}


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

    def run_dir(self, name: str, experiment: str | None = None) -> Path:
        """Where training run `name` of this preset lives: among this experiment's runs, or among
        those of `experiment` beside it when two experiments read the same runs."""
        out = self.out if experiment is None else self.out.parent / experiment
        return out / "runs" / self.preset / name

    def save_figure(self, figure: Any) -> Path:
        """Save a matplotlib figure as the experiment's `NAME.png`; returns its path."""
        path = self.out / f"{self.name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
        return path


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
