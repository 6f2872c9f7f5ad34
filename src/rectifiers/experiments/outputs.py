"""The files every experiment writes into `OUT/NAME/`:

results.json  the numbers, plus run metadata: preset, settings, seeds, data, the command, git
              revision, torch and Python versions, machine, wall time
table.md      the paper's numbers beside ours, the command that made ours, and plainly where
              they disagree
NAME.png      the figure, where the paper has one (`Context.save_figure`)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from rectifiers.experiments.context import Context, Outcome
from rectifiers.experiments.provenance import metadata


def jsonable(value: Any) -> Any:
    """`value` with paths, tensors and tuples as JSON has them, and NaN/inf as null (JSON has none)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, torch.Tensor):
        return jsonable(value.tolist())
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
    (ctx.out / "results.json").write_text(json.dumps(jsonable(record), indent=1) + "\n")
    path = ctx.out / "table.md"
    path.write_text("\n".join(_table_md(ctx, title, paper_ref, outcome, meta, wall_s)) + "\n")
    return path


def _table_md(
    ctx: Context, title: str, paper_ref: str, outcome: Outcome, meta: dict[str, Any], wall_s: float
) -> list[str]:
    """table.md's lines: title, the command, the data note, setup, table, verdicts, figures, footer."""
    lines = [f"# {title}", "", f"Paper: {paper_ref}. Ours: made by", "", "```", ctx.command, "```", ""]
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
    git, m = meta["git"], meta["machine"]
    revision = (
        "unknown" if git is None else git["commit"][:10] + (" (with local changes)" if git["dirty"] else "")
    )
    amx = "with AMX, " if m["amx"] else "no AMX, "
    lines.append(
        f"_Preset `{ctx.preset}`; {wall_s / 60:.1f} min wall time on {m['cpu']} ({amx}"
        f"{m['torch_threads']} torch threads); torch {meta['torch']}, rectifiers {meta['rectifiers']}, "
        f"git {revision}; {meta['date']}._"
    )
    return lines
