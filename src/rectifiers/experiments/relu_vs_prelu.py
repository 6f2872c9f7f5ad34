"""Table 2 at small scale: the 14-layer net with ReLU, channel-shared PReLU and channel-wise PReLU,
same epochs and schedule, ten-view error, mean ± std over seeds.

The paper (ImageNet, 75 epochs, 10-view testing): ReLU 33.82 / 13.34, channel-shared PReLU
32.71 / 12.87, channel-wise 32.64 / 12.75 (top-1 / top-5 %): PReLU lowers top-1 error by 1.1-1.2
points. Its images were resized to 256 (no scale jitter) for training and testing, views of 224.

Here: `net14` in its small-image form (`stem="small"`, width 0.25, fc 256) trained by
`rectifiers.engine.fit` with `common.RECIPE` (shorter side 32, crops of 28, the same 0.875 ratio,
flips), the paper's fixed-epoch schedule (lr 0.01, divided by 10 for the last epoch, at the same
epoch for every model), and tested by `rectifiers.evaluate.evaluate(views="ten")` on the final
checkpoint: the four corner 28-crops and the center crop of the 32-px image, each flipped. Runs
with the same seed share their initial conv/fc weights' random stream and the data order, so the
differences are paired by seed.
"""

from __future__ import annotations

import math
from typing import Any

from rectifiers.experiments.common import (
    SMOKE_DATA,
    SMOKE_MODEL,
    Context,
    Outcome,
    describe_data,
    markdown_table,
    mean_std,
    pct,
    pct_pm,
    subset,
    train,
)

TITLE = "Table 2: ReLU vs PReLU on the 14-layer net (ten-view error)"
PAPER = "Table 2 (Sec. 2.1)"
USES_DATA = True
USES_SEEDS = True

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "seeds": 1,
        "epochs": 1,
        "milestones": [],
        "n_train": None,
        "n_val": None,
        "data": SMOKE_DATA,
        "overrides": SMOKE_MODEL,
        "summary": "1 epoch on 64 fake images, tiny net",
    },
    "quick": {
        "seeds": 2,
        "epochs": 2,
        "milestones": [1],
        "n_train": 2000,
        "n_val": 500,
        "summary": "2 seeds, 2 epochs of 2,000 images",
    },
    "full": {
        "seeds": 3,
        "epochs": 6,
        "milestones": [5],
        "n_train": 5000,
        "n_val": 2000,
        "summary": "3 seeds, 6 epochs of 5,000 images, ten-view on 2,000",
    },
}
ACTS = {"relu": "ReLU", "prelu_shared": "PReLU, channel-shared", "prelu": "PReLU, channel-wise"}
# Table 2: top-1, top-5 (%), 10-view, ImageNet val
PAPER_ERR = {"relu": (33.82, 13.34), "prelu_shared": (32.71, 12.87), "prelu": (32.64, 12.75)}


def schedule(settings: dict[str, Any]) -> dict[str, Any]:
    """The fixed-epoch lr schedule of a preset, as config overrides."""
    if settings["milestones"]:
        return {"optim.schedule": "milestones", "optim.milestones": settings["milestones"]}
    return {"optim.schedule": "constant"}


def train_acts(ctx: Context, acts: list[str]) -> tuple[str, dict[str, int], dict[str, list[dict[str, Any]]]]:
    """Train `net14` with each activation in `acts` for every seed, the recipe of this experiment.
    Returns (data spec used, split sizes, runs per activation)."""
    settings = ctx.settings
    spec, sizes = subset(ctx.data or "", settings["n_train"], settings["n_val"])
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in acts}
    for seed in ctx.seeds:
        for act in acts:
            runs[act].append(
                train(
                    ctx,
                    f"{act}-seed{seed}",
                    {
                        "data.spec": spec,
                        "model.name": "net14",
                        "model.act": act,
                        "train.epochs": settings["epochs"],
                        "train.seed": seed,
                        **schedule(settings),
                    },
                )
            )
    return spec, sizes, runs


def run(ctx: Context) -> Outcome:
    from rectifiers.data import open_dataset
    from rectifiers.evaluate import evaluate

    spec, sizes, runs = train_acts(ctx, list(ACTS))
    val = open_dataset(spec, "val")
    results: dict[str, Any] = {"data": spec, "sizes": sizes, "acts": {}}
    for act, act_runs in runs.items():
        ten = []
        for r in act_runs:
            ctx.say(f"[{ctx.name}] ten-view test of {r['run_dir']}")
            crop = r["config"]["data"]["crop"]
            resize = r["config"]["data"]["eval_resize"]
            # 16 images = 160 views per forward pass: on a CPU much faster than a few large passes
            ev = evaluate([f"{r['run_dir']}/last.pt"], val, views="ten", scales=[resize], batch_size=16)
            ten.append({"top1_err": ev["top1_err"], "top5_err": ev["top5_err"], "n_images": ev["n_images"]})
            ctx.say(
                f"[{ctx.name}]   ten-view top-1 err {pct(ev['top1_err'])}% ({crop}-px views of {resize} px)"
            )
        results["acts"][act] = {
            "ten_view": ten,
            "center_top1_err": [r["metrics"][-1]["val_top1_err"] for r in act_runs],
            "train_loss": [r["metrics"][-1]["train_loss"] for r in act_runs],
            "run_dirs": [r["run_dir"] for r in act_runs],
        }

    relu_top1 = [t["top1_err"] for t in results["acts"]["relu"]["ten_view"]]
    rows, notes = [], []
    for act, label in ACTS.items():
        a = results["acts"][act]
        top1 = [t["top1_err"] for t in a["ten_view"]]
        top5 = [t["top5_err"] for t in a["ten_view"]]
        p1, p5 = PAPER_ERR[act]
        if act == "relu":
            gain_paper, gain_ours = "-", "-"
        else:
            diffs = [x - y for x, y in zip(top1, relu_top1, strict=True)]
            m, s = mean_std(diffs)
            se = s / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
            a["paired_diff_top1"] = {"mean": m, "std": s, "se": se, "per_seed": diffs}
            gain_paper = f"{p1 - PAPER_ERR['relu'][0]:+.2f}"
            gain_ours = f"{100 * m:+.2f}" + (f" ± {100 * se:.2f} (s.e.)" if len(diffs) > 1 else "")
            notes.append(_verdict(label, m, se, len(diffs)))
        rows.append(
            [
                label,
                f"{p1:.2f}",
                f"{p5:.2f}",
                pct_pm(top1),
                pct_pm(top5),
                pct_pm(a["center_top1_err"]),
                gain_paper,
                gain_ours,
            ]
        )
    k = len(results["acts"]["relu"]["ten_view"])
    table = "\n\n".join(
        [
            f"Top-1 / top-5 error (%), ten-view; ours: mean ± std over {k} seed(s). Δ = change of top-1 "
            "error against ReLU (negative: PReLU better); ours paired by seed, ± its standard error.",
            markdown_table(
                [
                    "model",
                    "paper top-1",
                    "paper top-5",
                    "ours top-1",
                    "ours top-5",
                    "ours top-1 (center crop)",
                    "paper Δ top-1",
                    "ours Δ top-1",
                ],
                rows,
                "lrrrrrrr",
            ),
        ]
    )
    classes = len(val.classes)
    results["classes"] = classes
    notes.append(
        "Scale: the paper's numbers are ImageNet (1000 classes, 1.28 M images, 75 epochs); ours are a short "
        f"CPU run of a narrow net on a small {classes}-class set, so the error levels are not comparable "
        f"(top-5 error among {classes} classes is small by construction), only the sign and size of the "
        "PReLU-vs-ReLU difference."
    )
    gains = {a: -results["acts"][a]["paired_diff_top1"]["mean"] for a in ACTS if a != "relu"}
    paper_gains = {a: (PAPER_ERR["relu"][0] - PAPER_ERR[a][0]) / 100 for a in gains}
    if any(not 0.5 <= gains[a] / paper_gains[a] <= 2 for a in gains):
        note = (
            "**Size disagrees**: our gains ("
            + ", ".join(f"{ACTS[a]} {100 * gains[a]:.1f}" for a in gains)
            + " points) against the paper's ("
            + ", ".join(f"{100 * paper_gains[a]:.1f}" for a in gains)
            + ")."
        )
        if ctx.settings["epochs"] >= 2:
            change = {a: _last_change(runs[a]) for a in ACTS}
            note += (
                " Center-crop error change over our last epoch: "
                + ", ".join(f"{100 * change[a]:+.1f} ({ACTS[a]})" for a in ACTS)
                + " points."
            )
            if all(c < -0.005 for c in change.values()):
                note += (
                    " Still falling: our short runs stop before the nets are trained out, so a difference "
                    "in how fast they train shows as a difference in error; the paper compares trained-out "
                    "models."
                )
        notes.append(note)
    s = ctx.settings
    setup = [
        describe_data(ctx.data, spec, sizes) + ".",
        f"Net: `net14`, small-image stem, {_model_text(runs)}; act relu | prelu_shared | prelu (slopes "
        "start at 0.25, no weight decay on them); He init, Eq. 10 (a = 0) on every layer, conv1 "
        "included, the same for the three activations.",
        f"Recipe (identical for the three): {s['epochs']} epochs, "
        f"batch {runs['relu'][0]['config']['train']['batch_size']}, SGD momentum 0.9, weight decay 5e-4, "
        "lr 0.01"
        + (f" → 0.001 after epoch {', '.join(map(str, s['milestones']))}" if s["milestones"] else " constant")
        + ", dropout 0.5; 28-px crops of 32-px images, flips; seeds "
        + ", ".join(map(str, ctx.seeds))
        + ".",
        "Test: `rectifiers.evaluate.evaluate(views='ten', scales=[32])` on the final checkpoint (last.pt).",
    ]
    return Outcome(results=results, table=table, notes=notes, setup=setup)


def _verdict(label: str, mean: float, se: float, n: int) -> str:
    ours = f"{100 * mean:+.2f} points"
    if n < 2:
        return f"{label}: ours {ours} against ReLU from one seed; no noise estimate, so no verdict."
    if mean < -2 * se:
        return (
            f"{label}: **agrees** — lower top-1 error than ReLU by {-100 * mean:.2f} points, more than "
            f"2 s.e. ({100 * se:.2f})."
        )
    if mean < 0:
        return (
            f"{label}: **not shown** — top-1 error lower by {-100 * mean:.2f} points, but within 2 s.e. "
            f"({100 * se:.2f}) of no difference (the paper: 1.1-1.2 points lower)."
        )
    return (
        f"{label}: **disagrees** — top-1 error {ours} against ReLU (s.e. {100 * se:.2f}); the paper found "
        "it lower."
    )


def _last_change(act_runs: list[dict[str, Any]]) -> float:
    """Mean change of the center-crop val error over the last epoch (negative: still falling)."""
    steps = [r["metrics"][-1]["val_top1_err"] - r["metrics"][-2]["val_top1_err"] for r in act_runs]
    return sum(steps) / len(steps)


def _model_text(runs: dict[str, list[dict[str, Any]]]) -> str:
    m = runs["relu"][0]["config"]["model"]
    return f"width {m['width']}, fc {m['fc_width']}, dropout {m['dropout']}"
