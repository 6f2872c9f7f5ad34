"""Sec. 2.2's worked example: VGG "model B" under Eq. 14 and under a fixed std of 0.01.

Eq. 14 gives each conv layer std = sqrt(2 / n̂), n̂ = k²·d: 0.059, 0.042, 0.029, 0.021 for the
64/128/256/512-filter layers of model B (ten 3×3 convs). With std 0.01 instead, each layer scales
the backward signal's std by 0.01 / sqrt(2 / n̂), so from conv10 back to conv2 it is
1/(5.9 × 4.2² × 2.9² × 2.1⁴) = 1/(1.7 × 10⁴) of what Eq. 14 keeps.

Both numbers are computed here from `create_model("vgg_b", init=False)` built on the meta device:
`rectifiers.initialize(..., mode="fan_out")` gives the stds and `InitReport.attenuation` the factor.
"""

from __future__ import annotations

import torch

from rectifiers.experiments.context import Context, Outcome, same_for_every_preset
from rectifiers.text_table import markdown_table

TITLE = "Init std of VGG model B (Eq. 14) and the attenuation of std 0.01"
PAPER = "Sec. 2.2, the model-B example"
USES_DATA = False
USES_SEEDS = False
PRESETS = same_for_every_preset("computed from the model definition on the meta device (no training)")

# Sec. 2.2: Eq. 14 stds by filter count, and the attenuation from conv10 back to conv2 with 0.01.
PAPER_STD = {64: 0.059, 128: 0.042, 256: 0.029, 512: 0.021}
PAPER_ATTENUATION = 1 / 1.7e4
PAPER_PRODUCT = 5.9 * 4.2**2 * 2.9**2 * 2.1**4  # the paper's own product of two-digit ratios
FIXED_STD = 0.01


def run(ctx: Context) -> Outcome:
    from rectifiers.init import initialize
    from rectifiers.models import create_model

    with torch.device("meta"):
        model = create_model("vgg_b", init=False)
    report = initialize(model, scheme="he", mode="fan_out")
    convs = [row for row in report if row.kind == "Conv2d"]
    layers = []
    rows = []
    for i, row in enumerate(convs, start=1):
        filters = row.shape[0]
        paper = PAPER_STD[filters]
        layers.append(
            {"layer": f"conv{i}", "name": row.name, "filters": filters, "n_hat": row.fan_out, "std": row.std}
        )
        agree = "yes" if round(row.std, 3) == paper else "**no**"
        rows.append([f"conv{i}", filters, row.fan_out, f"{paper:.3f}", f"{row.std:.4f}", agree])
    # Layers are numbered 1..10 in forward order, as the paper counts them ("from conv10 to conv2").
    factor = report.attenuation("2", "10", std=FIXED_STD, direction="backward")
    ratios = [row.std / FIXED_STD for row in convs[1:]]
    att_agree = abs(factor / PAPER_ATTENUATION - 1) < 0.05

    table = "\n\n".join(
        [
            "Eq. 14 std = sqrt(2 / n̂), n̂ = 3²·d, per conv layer (the fc layers are not part of the example):",
            markdown_table(
                ["layer", "filters d", "n̂", "paper std", "ours", "ours rounds to paper's"],
                rows,
                "lrrrrl",
            ),
            "Backward attenuation of the gradient's std from conv10 back to conv2 with std 0.01 on every "
            "layer, relative to Eq. 14 (Eq. 13: the product of 0.01 / std_l over conv2..conv10):",
            markdown_table(
                ["quantity", "paper", "ours"],
                [
                    [
                        "attenuation",
                        f"1/(1.7×10⁴) (1/{PAPER_PRODUCT:,.0f} from its rounded ratios)",
                        f"1/({1 / factor / 1e4:.2f}×10⁴) = 1/{1 / factor:,.0f}",
                    ],
                    [
                        "per-layer ratios std_l / 0.01",
                        "5.9, 4.2, 4.2, 2.9, 2.9, 2.1, 2.1, 2.1, 2.1",
                        ", ".join(f"{r:.2f}" for r in ratios),
                    ],
                ],
                "lll",
            ),
        ]
    )
    notes = [
        "All ten Eq. 14 stds round to the paper's 0.059 / 0.042 / 0.029 / 0.021."
        if all(r[-1] == "yes" for r in rows)
        else "Some stds do not round to the paper's: see the table.",
        f"Attenuation: ours 1/{1 / factor:,.0f}, the paper's 1/(1.7×10⁴): "
        + (
            "they agree. The paper multiplies ratios rounded to two digits (5.9 × 4.2² × 2.9² × 2.1⁴ = "
            f"{PAPER_PRODUCT:,.0f}); the exact ratios give {1 / factor:,.0f}, which also rounds to 1.7×10⁴."
            if att_agree
            else "they disagree by more than 5%."
        ),
    ]
    results = {
        "model": "vgg_b",
        "mode": "fan_out",
        "layers": layers,
        "paper_std": {str(k): v for k, v in PAPER_STD.items()},
        "fixed_std": FIXED_STD,
        "attenuation": factor,
        "attenuation_inverse": 1 / factor,
        "paper_attenuation": PAPER_ATTENUATION,
        "paper_product": PAPER_PRODUCT,
        "init_report": report.to_dict(),
    }
    setup = ["`create_model('vgg_b', init=False)` on the meta device; `initialize(mode='fan_out')` (Eq. 14)."]
    return Outcome(results=results, table=table, notes=notes, setup=setup)
