"""Table 1 at small scale: the learned PReLU slopes of every layer of the 14-layer net, channel-shared
and channel-wise (for channel-wise, the mean over the layer's channels), beside the paper's.

The paper's reading: conv1's slopes (0.681 shared, 0.596 channel-wise) are "significantly greater
than 0", and in the channel-wise version deeper conv layers generally have smaller slopes.

The models are Table 2's PReLU runs (`table2_runs`: whichever experiment runs first trains them).
Slopes come from the final checkpoint, and their course from each run's per-epoch `prelu_slopes`.
The readings are put as per-seed statistics for `verdict`: conv1's slope minus 0.1, conv1's slope
minus the mean of conv3_1..conv3_6, and Spearman's rank correlation between conv depth and slope;
the same statistics of the paper's Table 1 give the sign and size to compare with.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from rectifiers.experiments.context import Context, Outcome
from rectifiers.experiments.recipe import schedule_text
from rectifiers.experiments.runs import Run, runs_made_with, val_curve
from rectifiers.experiments.subsets import describe_data
from rectifiers.experiments.table2_runs import TABLE2_PRESETS, train_net14
from rectifiers.experiments.tables import mean_std, seeds_text
from rectifiers.experiments.verdict import TRAINED_OUT, Verdict, trained_out, verdict
from rectifiers.text_table import markdown_table

TITLE = "Table 1: learned PReLU coefficients of the 14-layer net"
PAPER = "Table 1 (Sec. 2.1)"
USES_DATA = True
USES_SEEDS = True
PRESETS = TABLE2_PRESETS  # Table 2's runs

ACTS = {"prelu_shared": "channel-shared", "prelu": "channel-wise"}
INIT_SLOPE = 0.25
CONVS = ["conv1", *[f"conv2_{i}" for i in range(1, 5)], *[f"conv3_{i}" for i in range(1, 7)]]
# Table 1: layer -> (channel-shared a, channel-wise mean a)
PAPER_SLOPES: dict[str, tuple[float, float]] = {
    "conv1": (0.681, 0.596),
    "conv2_1": (0.103, 0.321),
    "conv2_2": (0.099, 0.204),
    "conv2_3": (0.228, 0.294),
    "conv2_4": (0.561, 0.464),
    "conv3_1": (0.126, 0.196),
    "conv3_2": (0.089, 0.152),
    "conv3_3": (0.124, 0.145),
    "conv3_4": (0.062, 0.124),
    "conv3_5": (0.008, 0.134),
    "conv3_6": (0.210, 0.198),
    "fc1": (0.063, 0.074),
    "fc2": (0.031, 0.075),
}
CLEARLY_POSITIVE = 0.1  # "clearly larger than 0"
SETTLED = 0.02  # a layer's mean slope has settled when it moved less than this over the last 3 epochs
Course = tuple[list[int], dict[str, list[float]]]  # one run's (steps, layer -> mean slope per epoch)
Judged = tuple[str, float, list[float], Verdict]  # (claim, paper's statistic, ours per seed, verdict)


def layer_name(module_name: str) -> str:
    """Table 1's name of the layer a PReLU follows: `features.act2_1` follows conv2_1, `head.act1`
    follows fc1."""
    part, act = module_name.split(".")
    return act.replace("act", "conv" if part == "features" else "fc")


def layer_slopes(checkpoint: str) -> dict[str, float]:
    """Mean slope of every PReLU of a trained model, keyed by the layer before it."""
    from rectifiers.checkpoint.inference import load_model
    from rectifiers.engine import prelu_slopes

    return {layer_name(k): v for k, v in prelu_slopes(load_model(checkpoint)).items()}


def slope_course(run: Run) -> Course:
    """(steps, layer -> mean slope after each epoch) of a run, from its metrics."""
    steps = [m["step"] for m in run["metrics"]]
    course: dict[str, list[float]] = {}
    for m in run["metrics"]:
        for name, value in m["prelu_slopes"].items():
            course.setdefault(layer_name(name), []).append(value)
    return steps, course


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks; ties share their average rank (k ties from position i + 1 rank i + (k + 1) / 2)."""
    order = sorted(values)
    return [order.index(v) + (order.count(v) + 1) / 2 for v in values]


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (Pearson's on the ranks); nan if either side is constant."""
    rx, ry = _ranks(x), _ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    norm = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / norm if norm else float("nan")


# The paper's readings: (label, per-seed statistic of a layer -> slope map, the sign it claims)
CLAIMS: list[tuple[str, Any, int]] = [
    (f"conv1's slope clearly > 0 (conv1 − {CLEARLY_POSITIVE})", lambda s: s["conv1"] - CLEARLY_POSITIVE, 1),
    (
        "conv1 above the deep conv layers (conv1 − mean of conv3_x)",
        lambda s: s["conv1"] - statistics.fmean(s[n] for n in CONVS if n.startswith("conv3_")),
        1,
    ),
    ("deeper conv layers have smaller slopes (Spearman ρ of depth and slope)", lambda s: depth_rho(s), -1),
]


def depth_rho(slopes: dict[str, float]) -> float:
    """Spearman's ρ of conv depth (1..11) and slope; 0 (no order) where every slope is the same."""
    rho = spearman(list(range(1, len(CONVS) + 1)), [slopes[n] for n in CONVS])
    return rho if math.isfinite(rho) else 0.0


def run(ctx: Context) -> Outcome:
    spec, sizes, runs = train_net14(ctx, list(ACTS))
    per_seed = {
        act: [layer_slopes(f"{r['run_dir']}/last.pt") for r in act_runs] for act, act_runs in runs.items()
    }
    out = {act: all(trained_out(val_curve(r)) for r in runs[act]) for act in ACTS}
    courses = {act: [slope_course(r) for r in runs[act]] for act in ACTS}
    settled = {act: _settled(courses[act]) for act in ACTS}
    judged = {act: _judge(act, per_seed[act], out[act]) for act in ACTS}
    results: dict[str, Any] = {
        "data": spec,
        "sizes": sizes,
        "slopes_per_seed": per_seed,
        "slopes_mean": {
            act: {n: statistics.fmean(s[n] for s in per_seed[act]) for n in PAPER_SLOPES} for act in ACTS
        },
        "slope_courses": {act: [{"steps": st, "slopes": c} for st, c in courses[act]] for act in ACTS},
        "trained_out": out,
        "settled": settled,
        "paper": {n: {"prelu_shared": v[0], "prelu": v[1]} for n, v in PAPER_SLOPES.items()},
        "run_dirs": {act: [r["run_dir"] for r in act_runs] for act, act_runs in runs.items()},
        "claims": {
            act: [{"claim": c, "paper": p, "per_seed": vals, "verdict": v.kind} for c, p, vals, v in rows]
            for act, rows in judged.items()
        },
    }
    notes = [
        f"{label}: runs trained out ({TRAINED_OUT}): {'yes' if out[act] else 'no'}; slopes settled (every "
        f"layer's mean moved less than {SETTLED} over the last 3 epochs): {'yes' if settled[act] else 'no'}; "
        "their course is in the figure."
        for act, label in ACTS.items()
    ]
    notes.append(
        "Scale: the paper's slopes come from 75 ImageNet epochs of the full-width net; ours from a narrow "
        "net on small images (see setup), so the pattern, not the values, is comparable."
    )
    figure = _plot(ctx, courses)
    return Outcome(
        results=results,
        table=_tabulate(per_seed, judged, len(ctx.seeds)),
        notes=notes,
        setup=_setup(ctx, spec, sizes, runs),
        figures=[figure],
    )


def _settled(courses: list[Course]) -> bool:
    """Whether every layer's mean slope moved less than `SETTLED` over the last 3 epochs, every seed."""
    moved = [max(abs(c[-1] - v) for v in c[-3:]) for _, course in courses for c in course.values()]
    return all(m < SETTLED for m in moved) and all(len(steps) >= 3 for steps, _ in courses)


def _judge(act: str, per_seed: list[dict[str, float]], out: bool) -> list[Judged]:
    """Every claim of `CLAIMS` on one activation's per-seed slopes, against the same statistic of
    the paper's Table 1."""
    paper_slopes = {n: v[list(ACTS).index(act)] for n, v in PAPER_SLOPES.items()}
    judged = []
    for claim, statistic, sign in CLAIMS:
        paper = statistic(paper_slopes)
        values = [statistic(seed) for seed in per_seed]
        judged.append((claim, paper, values, verdict(values, sign=sign, paper=paper, trained_out=out)))
    return judged


def _tabulate(per_seed: dict[str, list[dict[str, float]]], judged: dict[str, list[Judged]], k: int) -> str:
    def cell(act: str, layer: str) -> str:
        m, s = mean_std([seed[layer] for seed in per_seed[act]])
        return f"{m:.3f}" + (f" ± {s:.3f}" if len(per_seed[act]) > 1 else "")

    rows = [
        [layer, f"{shared:.3f}", cell("prelu_shared", layer), f"{wise:.3f}", cell("prelu", layer)]
        for layer, (shared, wise) in PAPER_SLOPES.items()
    ]
    header = ["layer", "paper channel-shared", "ours channel-shared"]
    header += ["paper channel-wise (mean)", "ours channel-wise (mean)"]
    claim_rows = [
        [f"{ACTS[act]}: {claim}", f"{paper:+.3f}", v.describe(scale=1, unit="", digits=3)]
        for act, rows in judged.items()
        for claim, paper, _, v in rows
    ]
    return "\n\n".join(
        [
            f"Learned slopes of the final checkpoints (ours: mean over {k} seed(s)"
            + (", ± std" if k > 1 else "")
            + "; channel-wise: the mean over the layer's channels, as Table 1 shows):",
            markdown_table(header, rows, "lrrrr"),
            "The paper's readings as per-seed statistics (± standard error), the verdict by "
            "`experiments/verdict.py` against the same statistic of the paper's Table 1:",
            markdown_table(["claim", "paper", "ours"], claim_rows, "lrl"),
        ]
    )


def _setup(ctx: Context, spec: str, sizes: dict[str, int], runs: dict[str, list[Run]]) -> list[str]:
    s = ctx.settings
    return [
        describe_data(ctx.data, spec, sizes) + ".",
        "Runs: the PReLU runs of `relu-vs-prelu` (Table 2's models, the same run directories): `net14`, "
        f"small-image stem, {s['epochs']} epochs, {schedule_text(s)}, momentum 0.9, weight decay 5e-4 "
        f"except on the slopes (Sec. 2.1), slopes initialised to 0.25; {seeds_text(ctx.seeds)}.",
        "Slopes read from each run's final checkpoint (last.pt); their course from metrics.jsonl.",
        runs_made_with([r for act_runs in runs.values() for r in act_runs]),
    ]


def _plot(ctx: Context, courses: dict[str, list[Course]]) -> Path:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, len(ACTS), squeeze=False)[0]
    for ax, (act, label) in zip(axes, ACTS.items(), strict=True):
        seeds = courses[act]
        steps = seeds[0][0]
        for k, layer in enumerate(PAPER_SLOPES):
            curve = [statistics.fmean(course[layer][e] for _, course in seeds) for e in range(len(steps))]
            color = colormaps["viridis"](k / (len(PAPER_SLOPES) - 1))
            ax.plot([0, *steps], [INIT_SLOPE, *curve], "-", color=color, label=layer, lw=1.2)
        ax.set(xlabel="training step", ylabel="mean slope", title=f"{label} (mean of {len(seeds)} seed(s))")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, ncol=2)
    fig.suptitle("Learned PReLU slopes per layer against training steps (Table 1's runs)")
    return ctx.save_figure(fig)
