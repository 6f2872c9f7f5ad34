"""PReLU's cost (Sec. 2.1: "The time complexity due to PReLU is negligible for both forward and
backward propagation"), measured as the training throughput of the same net with ReLU and with PReLU.

The net is that of `relu-vs-prelu`. Two measurements, each with its variants interleaved
(`rectifiers.interleave`) so that a machine slowing down part-way slows every variant alike:

1. The training step (`rectifiers.step_timing.time_steps`): the trainer's step and a plain PyTorch
   step, each with ReLU and channel-wise PReLU, on the wall and CPU clocks.
2. End to end, `rectifiers.engine.fit` on in-memory fake images for ReLU, channel-shared and
   channel-wise PReLU: the images/s of the second of two epochs (the first includes warm-up), median
   over repeats.

The op count beside it (`rectifiers.complexity`): a PReLU adds one multiply per negative activation to
a layer that already costs n multiply-adds per value.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from rectifiers.experiments.context import Context, Outcome
from rectifiers.experiments.runs import train
from rectifiers.step_timing import StepCase, time_steps
from rectifiers.text_table import markdown_table

TITLE = "PReLU's cost: training throughput of the same net with ReLU and with PReLU"
PAPER = 'Sec. 2.1 ("negligible" time complexity)'
USES_DATA = False
USES_SEEDS = False

_TINY = {"model.width": 0.0625, "model.fc_width": 16}
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "step_repeats": 1,
        "step_warmup": 0,
        "repeats": 1,
        "steps": 2,
        "batch": 16,
        "amps": ["auto"],
        "overrides": _TINY,
        "summary": "1 timed step and 1 short fit per variant, tiny net",
    },
    "quick": {
        "step_repeats": 10,
        "step_warmup": 2,
        "repeats": 1,
        "steps": 8,
        "batch": 128,
        "amps": ["auto"],
        "summary": "10 timed steps per variant, 1 short fit each",
    },
    "full": {
        "step_repeats": 40,
        "step_warmup": 3,
        "repeats": 3,
        "steps": 20,
        "batch": 128,
        "amps": ["auto", "off"],
        "summary": "40 timed steps per variant; 3 interleaved fits each, bf16 autocast and float32",
    },
}
ACTS = {"relu": "ReLU", "prelu_shared": "PReLU, channel-shared", "prelu": "PReLU, channel-wise"}
AMP_LABEL = {"auto": "default (amp auto)", "off": "float32 (amp off)"}
NEGLIGIBLE = 0.97  # a throughput ratio at or above this counts as "negligible" (at most 3% slower)
SIZE, CROP = 32, 28


def _net(settings: dict[str, Any]) -> tuple[float, int]:
    overrides = settings.get("overrides", {})
    return overrides.get("model.width", 0.25), overrides.get("model.fc_width", 256)


def _case(settings: dict[str, Any]) -> StepCase:
    width, fc_width = _net(settings)
    return StepCase("net14", "net14", width, fc_width, in_chans=3, size=CROP, batch=settings["batch"])


def _extra_ops(settings: dict[str, Any]) -> dict[str, float]:
    """PReLU multiplies (one per activation value, an upper bound) against the net's multiply-adds."""
    import torch

    from rectifiers.complexity import complexity

    with torch.device("meta"):
        model = _case(settings).build("prelu", init=False)
    report = complexity(model, (3, CROP, CROP))
    # every conv and fc layer but the classifier is followed by a PReLU
    values = sum(int(torch.Size(layer.output_shape).numel()) for layer in report.layers[:-1])
    return {"activation_values": values, "macs": report.total_macs, "ratio": values / report.total_macs}


def _verdict(ratio: float, consistent: bool | None = None) -> str:
    if ratio >= NEGLIGIBLE:
        return f"**agrees** (cost within {100 * (1 - NEGLIGIBLE):.0f}%)"
    if consistent is False:
        return (
            f"**not resolved**: the median says {100 * (1 - ratio):.0f}% slower, but PReLU was faster in "
            "some repeats; this machine's noise is larger than the difference"
        )
    return f"**disagrees**: PReLU costs {100 * (1 - ratio):.0f}% of the throughput here"


def _step(ctx: Context) -> tuple[dict[str, Any], str, list[str]]:
    """Measurement 1: the trainer's step and a plain step, timed side by side."""
    s = ctx.settings
    ctx.say(f"[{ctx.name}] timing {s['step_repeats']} training steps of each variant")
    rows = time_steps([_case(s)], repeats=s["step_repeats"], warmup=s["step_warmup"])
    by = {r["variant"]: r for r in rows}
    trainer = by["trainer/prelu"]
    plain_ratio = by["plain/prelu"]["images_per_s"] / by["plain/relu"]["images_per_s"]
    plain_cpu = by["plain/prelu"]["images_per_cpu_s"] / by["plain/relu"]["images_per_cpu_s"]
    results = {
        "rows": rows,
        "trainer_ratio_wall": trainer["prelu_vs_relu"],
        "trainer_ratio_cpu": trainer["prelu_vs_relu_cpu"],
        "plain_ratio_wall": plain_ratio,
        "plain_ratio_cpu": plain_cpu,
    }
    labels = {
        "trainer": "trainer step ({}, channels_last, rectifiers.PReLU)",
        "plain": "plain PyTorch step ({}, NCHW, torch.nn.PReLU)",
    }
    prelu_ratios = {
        "trainer": (trainer["prelu_vs_relu"], trainer["prelu_vs_relu_cpu"]),
        "plain": (plain_ratio, plain_cpu),
    }
    table_rows = []
    for kind in ("trainer", "plain"):
        for act in ("relu", "prelu"):
            r = by[f"{kind}/{act}"]
            speeds = [f"{r['images_per_s']:.0f}", f"{r['images_per_cpu_s']:.0f}"]
            ratios = ["1", "1"] if act == "relu" else [f"{v:.3f}" for v in prelu_ratios[kind]]
            paper = "-" if act == "relu" else "negligible"
            table_rows.append([labels[kind].format(r["compute_dtype"]), ACTS[act], paper, *speeds, *ratios])
    table = "\n\n".join(
        [
            f"Training step (`rectifiers.step_timing.time_steps`, {s['step_repeats']} interleaved steps per "
            "variant, medians; trainer ratios are medians of the ratios of neighbouring steps, plain ones "
            "ratios of medians):",
            markdown_table(
                [
                    "step",
                    "activation",
                    "paper",
                    "images/s (wall)",
                    "images per CPU-s",
                    "÷ ReLU (wall)",
                    "÷ ReLU (CPU)",
                ],
                table_rows,
                "llrrrrr",
            ),
        ]
    )
    notes = [
        f"Trainer step, PReLU channel-wise: {trainer['prelu_vs_relu_cpu']:.3f}× ReLU's throughput on "
        f"CPU time ({trainer['prelu_vs_relu']:.3f}× on the wall clock), "
        f"{_verdict(trainer['prelu_vs_relu_cpu'])}.",
        f"Plain PyTorch step (torch.nn.PReLU): {plain_cpu:.3f}× on CPU time ({plain_ratio:.3f}× wall), "
        f"{_verdict(plain_cpu)}.",
    ]
    return results, table, notes


def _fit(ctx: Context) -> tuple[dict[str, Any], str, list[str]]:
    """Measurement 2: `fit` end to end."""
    from rectifiers.interleave import balanced_schedule

    s = ctx.settings
    batch, steps = s["batch"], s["steps"]
    spec = f"fake:n={batch * steps},val={batch},size={SIZE},classes=10,channels=3"
    speed: dict[str, dict[str, list[float]]] = {amp: {act: [] for act in ACTS} for amp in s["amps"]}
    variants = [(amp, act) for amp in s["amps"] for act in ACTS]
    timing = dataclasses.replace(ctx, fresh=True)  # a throughput is measured now, never reused
    for amp, act in balanced_schedule(variants, s["repeats"]):
        run = train(
            timing,
            ctx.run_dir(f"{act}-{amp}-r{len(speed[amp][act])}"),
            {
                "data.spec": spec,
                "model.name": "net14",
                "model.act": act,
                "train.amp": amp,
                "train.epochs": 2,
                "train.batch_size": batch,
                "optim.schedule": "constant",
            },
        )
        speed[amp][act].append(run["metrics"][-1]["images_per_s"])

    rows, notes, results = [], [], {"data": spec, "speed": speed, "ratios": {}}
    for amp in s["amps"]:
        med = {act: statistics.median(v) for act, v in speed[amp].items()}
        base = med["relu"]
        ratios = {}
        for act in ACTS:
            paired = [p / q for p, q in zip(speed[amp][act], speed[amp]["relu"], strict=True)]
            ratio = med[act] / base
            ratios[act] = {"median_ratio": ratio, "paired_min": min(paired), "paired_max": max(paired)}
            spread = f"{min(speed[amp][act]):.0f}-{max(speed[amp][act]):.0f}"
            found = ["1", "-"] if act == "relu" else [f"{ratio:.3f}", f"{min(paired):.3f}-{max(paired):.3f}"]
            paper = "-" if act == "relu" else "negligible"
            rows.append([AMP_LABEL[amp], ACTS[act], paper, f"{med[act]:.0f}", spread, *found])
            if act != "relu":
                verdict = _verdict(ratio, consistent=max(paired) < 1 or min(paired) >= NEGLIGIBLE)
                notes.append(f"fit, {ACTS[act]}, {AMP_LABEL[amp]}: {ratio:.3f}× ReLU's images/s, {verdict}.")
        results["ratios"][amp] = ratios
    table = "\n\n".join(
        [
            "End to end: training images/s as `fit` reports them (second epoch of each run, "
            f"{steps} steps of {batch} fake {SIZE}-px images in memory, {CROP}-px crops), median over "
            f"{s['repeats']} interleaved repeat(s); paired = the ratio of the k-th runs (min-max):",
            markdown_table(
                ["precision", "activation", "paper", "images/s (median)", "range", "÷ ReLU", "paired ÷ ReLU"],
                rows,
                "llrrrrr",
            ),
        ]
    )
    return results, table, notes


def run(ctx: Context) -> Outcome:
    s = ctx.settings
    step_results, step_table, step_notes = _step(ctx)
    fit_results, fit_table, fit_notes = _fit(ctx)
    ops = _extra_ops(s)
    ctx.data = fit_results["data"]
    results = {"step": step_results, "fit": fit_results, "extra_ops": ops}
    table = "\n\n".join(
        [
            step_table,
            fit_table,
            f"Op count: PReLU adds at most {ops['activation_values']:,} multiplies per image to the net's "
            f"{ops['macs']:,} multiply-adds ({100 * ops['ratio']:.2f}%), so its arithmetic is negligible; "
            "any larger time difference is memory traffic and kernel overhead of the implementation.",
        ]
    )
    notes = [
        *step_notes,
        *fit_notes,
        "The time is that of this implementation on this machine (see the footer), not a property of PReLU; "
        "a faster PReLU kernel changes it, so the git revision in results.json says which code was timed.",
    ]
    width, fc_width = _net(s)
    setup = [
        f"Net: `net14`, small-image stem, width {width}, fc {fc_width}, {CROP}-px inputs, batch "
        f"{s['batch']}, 10 classes; SGD momentum 0.9, weight decay 5e-4 (not on slopes).",
        "Step benchmark: random inputs, the same batch every step; end to end: fake in-memory images, "
        f"{s['repeats']} run(s) of each of "
        + ", ".join(f"{a}/{m}" for m in s["amps"] for a in ACTS)
        + ", in a carryover-balanced order.",
    ]
    return Outcome(results=results, table=table, notes=notes, setup=setup)
