"""Figures 2 and 3 at small scale: a 22-layer and a 30-layer ReLU net trained from He's init and from
Xavier's, validation error against epoch.

The paper's claims (Sec. 2.2, p. 5-6): at 22 layers both inits converge and He's "starts reducing
error earlier"; at 30 layers He's converges while Xavier's "completely stalls".

Every run goes through `rectifiers.engine.fit` with `recipe.RECIPE`; the two arms differ only in
`init.scheme` (He std = sqrt(2 / n), Xavier sqrt(1 / n), on every conv and fc layer). conv1 keeps
Eq. 10 with a = 0, as the paper does "for simplicity". The scheme sets the fc layers too: the paper's
fixed fc stds (0.01, 0.01, 0.001) were chosen for 4096-wide layers and unnormalised pixels, stall a
256-wide head, and would make part of both arms identical by fiat.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rectifiers.experiments.context import Context, Outcome
from rectifiers.experiments.recipe import FULL_CONVERGENCE, holdout_text, preset, schedule_text, smoke
from rectifiers.experiments.runs import Run, runs_made_with, train_arms, val_curve
from rectifiers.experiments.subsets import describe_data
from rectifiers.experiments.tables import pct, pct_pm, seeds_text
from rectifiers.experiments.verdict import trained_out, verdict
from rectifiers.text_table import markdown_table

TITLE = "Figures 2 and 3: He vs Xavier init on 22- and 30-layer ReLU nets"
PAPER = "Sec. 2.2, Figures 2 and 3"
USES_DATA = True
USES_SEEDS = True

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": smoke("1 epoch on 64 fake images, tiny nets"),
    "quick": preset(
        "1 seed, 3 epochs of 1,800 images (200 held out)",
        seeds=1,
        epochs=3,
        milestones=[],
        n_train=2000,
        n_val=500,
    ),
    "full": FULL_CONVERGENCE,
}
NETS = {"net22": "22 layers (Figure 2)", "net30": "30 layers (Figure 3)"}
INITS = {"he": "He (Eq. 10)", "xavier": "Xavier"}
# Criteria, fixed before any run
LEARNED = 0.10  # "converges": the final held-out val error at least this far below chance
NEAR_CHANCE = 0.05  # "stalls": never more than this below chance
EARLY_SHARE = 0.25  # "starts reducing error earlier": the mean error over the first quarter of the epochs


def statements(
    per_seed: dict[str, dict[str, list[list[float]]]], chance: float
) -> list[tuple[str, list[float]]]:
    """The paper's four statements as per-seed statistics whose sign is positive where the statement
    holds: (statement, one value per seed)."""

    def margin(curves: list[list[float]]) -> list[float]:  # > 0: converged
        return [chance - LEARNED - c[-1] for c in curves]

    def early(curve: list[float]) -> float:
        k = max(1, round(EARLY_SHARE * len(curve)))
        return statistics.fmean(curve[:k])

    he22, xa22, he30, xa30 = (per_seed[n][i] for n in NETS for i in INITS)
    return [
        (
            f"22 layers: both converge (chance − {pct(LEARNED, 0)} points − final error; the smaller of He's "
            "and Xavier's)",
            [min(h, x) for h, x in zip(margin(he22), margin(xa22), strict=True)],
        ),
        (
            "22 layers: He starts reducing error earlier (Xavier's minus He's error, mean over the first "
            f"{pct(EARLY_SHARE, 0)}% of the epochs)",
            [early(x) - early(h) for h, x in zip(he22, xa22, strict=True)],
        ),
        (f"30 layers: He converges (chance − {pct(LEARNED, 0)} points − final error)", margin(he30)),
        (
            f"30 layers: Xavier stalls (lowest error − (chance − {pct(NEAR_CHANCE, 0)} points))",
            [min(c) - (chance - NEAR_CHANCE) for c in xa30],
        ),
    ]


def run(ctx: Context) -> Outcome:
    from rectifiers.data import open_dataset

    spec, sizes, runs = _train(ctx)
    classes = len(open_dataset(spec, "val").classes)
    chance = 1 - 1 / classes
    per_seed = {n: {i: [val_curve(r) for r in runs[n][i]] for i in INITS} for n in NETS}
    curves = {n: {i: _curve(runs[n][i]) for i in INITS} for n in NETS}
    out = {n: {i: [trained_out(c) for c in per_seed[n][i]] for i in INITS} for n in NETS}
    claims = _judge(per_seed, out, chance)
    results: dict[str, Any] = {
        "chance_err": chance,
        "classes": classes,
        "data": spec,
        "sizes": sizes,
        "curves": curves,
        "per_seed": per_seed,
        "trained_out": out,
        "test_top1_err": {
            n: {i: [r["result"]["test_top1_err"] for r in runs[n][i]] for i in INITS} for n in NETS
        },
        "train_loss": {n: {i: _curve(runs[n][i], "train_loss") for i in INITS} for n in NETS},
        "run_dirs": {n: {i: [r["run_dir"] for r in runs[n][i]] for i in INITS} for n in NETS},
        "claims": [{**c, "verdict": c["verdict"].kind} for c in claims],
    }
    notes = [f"{c['claim']}: {c['verdict'].describe()}." for c in claims]
    notes.append(
        f'Criteria (fixed before running): "converges" = final error at least {pct(LEARNED, 0)} points '
        f'below chance; "stalls" = never more than {pct(NEAR_CHANCE, 0)} points below chance; "earlier" = '
        f"Xavier's mean error over the first {pct(EARLY_SHARE, 0)}% of the epochs above He's; trained out = "
        "the last 3 epochs within 1 point. The paper's runs were ImageNet, 1000 classes, many more "
        "iterations."
    )
    return Outcome(
        results=results,
        table=_tabulate(claims, results, len(ctx.seeds)),
        notes=notes,
        setup=_setup(ctx, spec, sizes, classes, runs),
        figures=[_plot(ctx, curves, per_seed, chance)],
    )


def _train(ctx: Context) -> tuple[str, dict[str, int], dict[str, dict[str, list[Run]]]]:
    """Every net with every init for every seed; returns (data spec, sizes, runs[net][init])."""
    arms = {
        f"{net}-{init}": {"model.name": net, "model.act": "relu", "init.scheme": init}
        for net in NETS
        for init in INITS
    }
    spec, sizes, by_arm = train_arms(ctx, arms)
    return spec, sizes, {n: {i: by_arm[f"{n}-{i}"] for i in INITS} for n in NETS}


def _curve(runs: list[Run], key: str = "val_top1_err") -> list[float]:
    """Mean over seeds of `key` per epoch."""
    epochs = min(len(r["metrics"]) for r in runs)
    return [statistics.fmean(r["metrics"][e][key] for r in runs) for e in range(epochs)]


def _judge(
    per_seed: dict[str, dict[str, list[list[float]]]], out: dict[str, dict[str, list[bool]]], chance: float
) -> list[dict[str, Any]]:
    """The verdict on each of the paper's statements; a statement's runs are those of its net."""
    claims = []
    for (statement, values), net in zip(
        statements(per_seed, chance), ["net22", "net22", "net30", "net30"], strict=True
    ):
        every_run_out = all(all(out[net][i]) for i in INITS)
        v = verdict(values, sign=1, trained_out=every_run_out)
        claims.append({"claim": statement, "per_seed": values, "verdict": v, "trained_out": every_run_out})
    return claims


def _tabulate(claims: list[dict[str, Any]], results: dict[str, Any], k: int) -> str:
    claim_rows = [[c["claim"], "yes", c["verdict"].describe()] for c in claims]
    curves, per_seed, out = results["curves"], results["per_seed"], results["trained_out"]
    epochs = len(curves["net22"]["he"])
    curve_rows = []
    for net, label in NETS.items():
        for init, name in INITS.items():
            seeds = per_seed[net][init]
            cells = [pct_pm([c[e] for c in seeds]) for e in range(epochs)]  # mean ± std over seeds
            flat = f"{sum(out[net][init])}/{len(seeds)}"
            curve_rows.append([label, name, *cells, pct_pm(results["test_top1_err"][net][init]), flat])
    return "\n\n".join(
        [
            "The paper's four statements, each as a per-seed statistic that is positive where it holds "
            "(± standard error), the verdict by `experiments/verdict.py`:",
            markdown_table(
                ["the paper's statement", "paper", "ours (per-seed statistic)"], claim_rows, "lll"
            ),
            f"Held-out validation top-1 error (%) after each epoch, mean ± std over {k} seed(s) "
            f"(center crop; chance {pct(results['chance_err'])}%), the test split's once at the end:",
            markdown_table(
                ["net", "init", *[f"epoch {e + 1}" for e in range(epochs)], "test (final)", "trained out"],
                curve_rows,
                "ll" + "r" * (epochs + 2),
            ),
        ]
    )


def _setup(
    ctx: Context, spec: str, sizes: dict[str, int], classes: int, runs: dict[str, dict[str, list[Run]]]
) -> list[str]:
    settings = ctx.settings
    config = runs["net22"]["he"][0]["config"]
    m = config["model"]
    return [
        f"{describe_data(ctx.data, spec, sizes)}; {classes} classes; {holdout_text(settings)}",
        f"Nets: `net22` / `net30`, `stem='small'` (width {m['width']}, fc {m['fc_width']}), act relu, "
        "dropout 0.5.",
        f"Recipe: {settings['epochs']} epoch(s), batch {config['train']['batch_size']}, SGD "
        f"{schedule_text(settings)}, momentum 0.9, weight decay 5e-4; crops 28 of 32-px images, flips; "
        f"{seeds_text(ctx.seeds)}.",
        "Init: He = `init.scheme=he, init.mode=fan_in, init.a=0` (std sqrt(2/n), conv1 too), "
        "Xavier = `init.scheme=xavier, init.mode=fan_in` (std sqrt(1/n)), on every conv and fc layer; "
        "biases 0; nothing else differs.",
        runs_made_with([r for by_init in runs.values() for rs in by_init.values() for r in rs]),
    ]


def _plot(
    ctx: Context, curves: dict[str, dict[str, list[float]]], per_seed: dict[str, Any], chance: float
) -> Path:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    colors = {"he": "tab:red", "xavier": "tab:blue"}
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, len(NETS), squeeze=False)[0]
    for ax, (net, label) in zip(axes, NETS.items(), strict=True):
        for init, name in INITS.items():
            curve = curves[net][init]
            epochs = list(range(1, len(curve) + 1))
            ax.plot(
                epochs, curve, "o-", color=colors[init], label=f"{name}, mean of {len(per_seed[net][init])}"
            )
            seeds = per_seed[net][init]
            if len(seeds) > 1:
                lo = [min(s[e] for s in seeds) for e in range(len(curve))]
                hi = [max(s[e] for s in seeds) for e in range(len(curve))]
                ax.fill_between(epochs, lo, hi, color=colors[init], alpha=0.15, linewidth=0)
        ax.axhline(chance, color="k", ls="--", lw=0.8, label="chance")
        ax.set(xlabel="epoch", ylabel="validation top-1 error", title=f"{label}, ReLU")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("He vs Xavier initialization (small-image nets; band: min-max over seeds)")
    return ctx.save_figure(fig)
