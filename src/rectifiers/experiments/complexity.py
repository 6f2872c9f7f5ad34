"""Table 3's depth and complexity columns, counted from the model definitions.

Every model is built on the meta device (`create_model(name, init=False)`) and
`rectifiers.complexity` counts its conv and fc multiply-adds for one 224×224 image, the paper's
"complexity (ops, ×10¹⁰)", and its conv + fc layers, the paper's "depth". The 14- and 30-layer
models of Table 1 and Figure 3 are listed for their depth (the paper gives no complexity for them).
"""

from __future__ import annotations

import torch

from rectifiers.experiments.context import Context, Outcome, same_for_every_preset
from rectifiers.text_table import markdown_table

TITLE = "Table 3: depth and complexity of the large models"
PAPER = "Table 3 (and the depths of Table 1 and Figure 3)"
USES_DATA = False
USES_SEEDS = False
PRESETS = same_for_every_preset("counted from the model definitions on the meta device (no training)")

# model -> (paper's depth, paper's complexity ×10¹⁰ or None, where the paper gives it)
PAPER_ROWS: dict[str, tuple[int, float | None, str]] = {
    "vgg19": (19, 1.96, "Table 3"),
    "model_a": (19, 1.90, "Table 3"),
    "model_b": (22, 2.32, "Table 3"),
    "model_c": (22, 5.30, "Table 3"),
    "net14": (14, None, "Table 1"),
    "net30": (30, None, "Figure 3"),
}
TOLERANCE = 0.02  # the complexity column agrees when within 2% of the paper's


def run(ctx: Context) -> Outcome:
    from rectifiers.complexity import complexity
    from rectifiers.models import create_model

    rows, results, notes = [], {}, []
    for name, (paper_depth, paper_ops, source) in PAPER_ROWS.items():
        with torch.device("meta"):
            model = create_model(name, init=False)
        report = complexity(model, (3, 224, 224))
        ops = report.total_macs / 1e10
        diff = None if paper_ops is None else ops / paper_ops - 1
        results[name] = {
            "depth": report.depth,
            "paper_depth": paper_depth,
            "macs": report.total_macs,
            "ops_1e10": ops,
            "paper_ops_1e10": paper_ops,
            "relative_diff": diff,
            "params": report.total_params,
            "source": source,
        }
        rows.append(
            [
                name,
                source,
                paper_depth,
                report.depth,
                "-" if paper_ops is None else f"{paper_ops:.2f}",
                f"{ops:.3f}",
                "-" if diff is None else f"{100 * diff:+.1f}%",
                f"{report.total_params / 1e6:.1f} M",
            ]
        )
        if report.depth != paper_depth:
            notes.append(f"{name}: depth {report.depth}, the paper says {paper_depth}.")
        if diff is not None and abs(diff) > TOLERANCE:
            notes.append(
                f"{name}: {ops:.3f}×10¹⁰ multiply-adds, {100 * diff:+.1f}% off the paper's {paper_ops}."
            )
    notes.insert(
        0,
        "Depths agree for every model."
        if all(r["depth"] == r["paper_depth"] for r in results.values())
        else "Some depths disagree (below).",
    )
    compared = {n: r for n, r in results.items() if r["relative_diff"] is not None}
    within = [n for n, r in compared.items() if abs(r["relative_diff"]) <= TOLERANCE]
    notes.insert(
        1, f"Complexity within {100 * TOLERANCE:.0f}% of the paper for {', '.join(within) or 'none'}."
    )
    for n, r in compared.items():
        # beyond the paper's two-decimal rounding (half a unit in the last place)
        if abs(r["ops_1e10"] - r["paper_ops_1e10"]) > 0.005:
            notes.append(
                f"{n}: {r['ops_1e10']:.3f} against the paper's {r['paper_ops_1e10']:.2f} "
                f"({100 * r['relative_diff']:+.1f}%), beyond its two-decimal rounding; the paper does not "
                "state its counting convention (e.g. whether the fc layers are counted)."
            )
    table = markdown_table(
        [
            "model",
            "source",
            "paper depth",
            "our depth",
            "paper ops ×10¹⁰",
            "our multiply-adds ×10¹⁰",
            "diff",
            "our params",
        ],
        rows,
        "llrrrrrr",
    )
    setup = [
        "`create_model(name, init=False)` on the meta device, 1000 classes, "
        "`complexity(model, (3, 224, 224))`: multiply-adds of conv + fc layers for one 224×224 image; "
        "depth = conv + fc layers.",
        "Parameters are ours only (the paper does not list them).",
    ]
    return Outcome(results=results, table=table, notes=notes, setup=setup)
