"""Table 2 at small scale: the 14-layer net with ReLU, channel-shared PReLU and channel-wise PReLU,
same epochs and schedule, ten-view error, mean ± std over seeds.

The paper (ImageNet, 75 epochs, 10-view testing): ReLU 33.82 / 13.34, channel-shared PReLU
32.71 / 12.87, channel-wise 32.64 / 12.75 (top-1 / top-5 %): PReLU lowers top-1 error by 1.1-1.2
points.

Here: `net14` in its small-image form trained by `rectifiers.engine.fit` with `recipe.RECIPE`, and
tested once by `rectifiers.evaluate.evaluate` with `EvalOptions(views="ten")` on the final checkpoint
over the test split. Runs with the same seed start from the same weights and see the data in the same
order, so the differences are paired by seed; `verdict` reads them. Table 1 (`coefficients`) reads its slopes
from these runs' PReLU models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rectifiers.experiments.context import Context, Outcome
from rectifiers.experiments.recipe import holdout_text, schedule_text
from rectifiers.experiments.runs import Run, runs_made_with, val_curve
from rectifiers.experiments.subsets import describe_data
from rectifiers.experiments.table2_runs import TABLE2_PRESETS, train_net14
from rectifiers.experiments.tables import pct, pct_pm, seeds_text
from rectifiers.experiments.verdict import TRAINED_OUT, Verdict, trained_out, verdict
from rectifiers.text_table import markdown_table

TITLE = "Table 2: ReLU vs PReLU on the 14-layer net (ten-view error)"
PAPER = "Table 2 (Sec. 2.1)"
USES_DATA = True
USES_SEEDS = True
PRESETS = TABLE2_PRESETS  # the runs Table 1 reads too

ACTS = {"relu": "ReLU", "prelu_shared": "PReLU, channel-shared", "prelu": "PReLU, channel-wise"}
# Table 2: top-1, top-5 (%), 10-view, ImageNet val
PAPER_ERR = {"relu": (33.82, 13.34), "prelu_shared": (32.71, 12.87), "prelu": (32.64, 12.75)}


def run(ctx: Context) -> Outcome:
    from rectifiers.data import open_dataset

    spec, sizes, runs = train_net14(ctx, list(ACTS))
    test = open_dataset(spec, "val")
    acts = {act: _measure(ctx, act_runs, test) for act, act_runs in runs.items()}
    verdicts = _judge(acts)
    for act, v in verdicts.items():
        diffs = _top1_minus_relu(acts, act)
        acts[act]["paired_diff_top1"] = {"mean": v.mean, "se": v.se, "per_seed": diffs, "verdict": v.kind}
    classes = len(test.classes)
    notes = [
        f"{ACTS[act]}, top-1 error minus ReLU's (paired by seed): {v.describe()}."
        for act, v in verdicts.items()
    ]
    notes += _caveats(acts, len(ctx.seeds), classes)
    return Outcome(
        results={"data": spec, "sizes": sizes, "acts": acts, "classes": classes},
        table=_tabulate(acts, verdicts, len(ctx.seeds)),
        notes=notes,
        setup=_setup(ctx, spec, sizes, runs),
    )


def ten_view_test(ctx: Context, run: Run, test: Any) -> dict[str, Any]:
    """The ten-view error of a run's final checkpoint on `test`, kept in the run directory
    (`ten_view.json`) so that rebuilding the tables does not test a finished run again."""
    from rectifiers.evaluate import EvalOptions, evaluate

    kept = Path(run["run_dir"]) / "ten_view.json"
    checkpoint = Path(run["run_dir"]) / "last.pt"
    if kept.is_file() and kept.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns:
        return json.loads(kept.read_text())
    ctx.say(f"[{ctx.name}] ten-view test of {run['run_dir']}")
    resize = run["config"]["data"]["eval_resize"]
    # 64 images (640 views) a forward pass: faster than smaller batches on a 2-core CPU
    ev = evaluate([str(checkpoint)], test, EvalOptions(views="ten", scales=(resize,), batch_size=64))
    found = {"top1_err": ev["top1_err"], "top5_err": ev["top5_err"], "n_images": ev["n_images"]}
    kept.write_text(json.dumps(found) + "\n")
    ctx.say(f"[{ctx.name}]   ten-view top-1 err {pct(ev['top1_err'])}%")
    return found


def _measure(ctx: Context, runs: list[Run], test: Any) -> dict[str, Any]:
    """One activation's numbers over its seeds: ten-view test, center-crop test, curves."""
    return {
        "ten_view": [ten_view_test(ctx, r, test) for r in runs],
        "center_top1_err": [r["result"]["test_top1_err"] for r in runs],
        "val_curves": [val_curve(r) for r in runs],
        "trained_out": [trained_out(val_curve(r)) for r in runs],
        "train_loss": [r["metrics"][-1]["train_loss"] for r in runs],
        "run_dirs": [r["run_dir"] for r in runs],
        "revisions": [r["revision"] for r in runs],
    }


def _top1(measured: dict[str, Any]) -> list[float]:
    return [t["top1_err"] for t in measured["ten_view"]]


def _top1_minus_relu(acts: dict[str, dict[str, Any]], act: str) -> list[float]:
    """The paired differences: `act`'s ten-view top-1 error minus ReLU's of the same seed."""
    return [x - y for x, y in zip(_top1(acts[act]), _top1(acts["relu"]), strict=True)]


def _judge(acts: dict[str, dict[str, Any]]) -> dict[str, Verdict]:
    """Each PReLU's paired difference against the paper's ("PReLU lowers the error")."""
    return {
        act: verdict(
            _top1_minus_relu(acts, act),
            sign=-1,
            paper=(PAPER_ERR[act][0] - PAPER_ERR["relu"][0]) / 100,
            trained_out=all(acts[act]["trained_out"] + acts["relu"]["trained_out"]),
        )
        for act in ACTS
        if act != "relu"
    }


def _tabulate(acts: dict[str, dict[str, Any]], verdicts: dict[str, Verdict], k: int) -> str:
    rows = []
    for act, label in ACTS.items():
        a, (p1, p5) = acts[act], PAPER_ERR[act]
        gain_paper, gain_ours, found = "-", "-", "-"
        if act in verdicts:
            v = verdicts[act]
            gain_paper = f"{p1 - PAPER_ERR['relu'][0]:+.2f}"
            gain_ours = f"{100 * v.mean:+.2f}" + (f" ± {100 * v.se:.2f}" if v.n > 1 else "")
            found = v.kind
        ours = [
            pct_pm(_top1(a)),
            pct_pm([t["top5_err"] for t in a["ten_view"]]),
            pct_pm(a["center_top1_err"]),
        ]
        rows.append([label, f"{p1:.2f}", f"{p5:.2f}", *ours, gain_paper, gain_ours, found])
    header = ["model", "paper top-1", "paper top-5", "ours top-1", "ours top-5", "ours top-1 (center crop)"]
    header += ["paper Δ top-1", "ours Δ top-1", "verdict"]
    return "\n\n".join(
        [
            f"Top-1 / top-5 error (%) on the test split, ten-view; ours: mean ± std over {k} seed(s). Δ = "
            "change of top-1 error against ReLU (negative: PReLU better); ours paired by seed, ± its "
            "standard error; the verdict by `experiments/verdict.py`.",
            markdown_table(header, rows, "lrrrrrrrl"),
        ]
    )


def _caveats(acts: dict[str, dict[str, Any]], k: int, classes: int) -> list[str]:
    """The notes beside the verdicts: which runs were trained out, and what the scale allows."""
    flat = {act: sum(acts[act]["trained_out"]) for act in ACTS}
    return [
        f"Trained out ({TRAINED_OUT}): " + ", ".join(f"{ACTS[a]} {flat[a]} of {k}" for a in ACTS) + " runs.",
        "Scale: the paper's numbers are ImageNet (1000 classes, 1.28 M images, 75 epochs); ours a narrow net "
        f"on small images of a {classes}-class set, so the error levels are not comparable (top-5 among "
        f"{classes} classes is small by construction), only the sign and size of the difference.",
    ]


def _setup(ctx: Context, spec: str, sizes: dict[str, int], runs: dict[str, list[Run]]) -> list[str]:
    s = ctx.settings
    relu0 = runs["relu"][0]["config"]
    m = relu0["model"]
    return [
        f"{describe_data(ctx.data, spec, sizes)}; {holdout_text(s)}",
        f"Net: `net14`, small-image stem, width {m['width']}, fc {m['fc_width']}, dropout {m['dropout']}; "
        "act relu | prelu_shared | prelu (slopes start at 0.25, no weight decay on them); He init, Eq. 10 "
        "(a = 0) on every layer, conv1 included, the same for the three activations.",
        f"Recipe (identical for the three): {s['epochs']} epochs, batch {relu0['train']['batch_size']}, "
        f"SGD momentum 0.9, weight decay 5e-4, {schedule_text(s)}, dropout 0.5; 28-px crops of 32-px "
        f"images, flips; {seeds_text(ctx.seeds)}.",
        "Test: `rectifiers.evaluate.evaluate(views='ten', scales=[32])` on the final checkpoint (last.pt).",
        runs_made_with([r for act_runs in runs.values() for r in act_runs]),
    ]
