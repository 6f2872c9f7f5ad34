"""Training-step benchmark: the trainer's step against a plain PyTorch loop, PReLU against ReLU, the
step's peak memory, and the loader's images/s beside the step's.

Variants of one step (batch of random images, SGD momentum 0.9, weight decay 5e-4):

    trainer/prelu  what `rectifiers train` runs by default: channels_last model and input, the
                   precision `train.amp = auto` picks for this model (bf16 with AMX; without it,
                   the faster of bf16 and fp32 as measured on the model, see `rectifiers.amp`),
                   `rectifiers.PReLU` (the fused kernel), no weight decay on the slopes, the loss
                   in float32, the (disabled on CPU) GradScaler calls, and the step bookkeeping of
                   `engine.Trainer._train_epoch`: the loss kept for the finiteness check and the
                   top-1 sums on the device, read back every `step_tally.READ_EVERY` steps
    trainer/relu   the same with ReLU
    plain/prelu    what a user writes by hand: float32, NCHW, eager, `torch.nn.PReLU`,
                   ``SGD(model.parameters(), ...)``, ``loss.backward(); opt.step()``
    plain/relu     the same with ReLU

All variants of one model are built in one process and timed interleaved, in an order where each
variant comes right after every other one equally often (`time_interleaved`), so load from other
processes and the wake of the step before hit them alike; the medians of the repeats are reported,
and ratios are medians of the ratios of neighbouring steps. Each step is timed on the wall clock and on the
process's CPU clock: on a machine shared with other jobs the wall clock also counts the time the
process waited for a core, the CPU clock only the work (with one thread it is the cleaner measure;
with several, OpenMP threads that spin while waiting for each other add to it).

The trainer keeps freed memory in the heap (`rectifiers.runtime.keep_freed_memory`), which is
process-wide: here it helps the plain loop too, so the trainer/plain ratio is if anything low.
`measure_step_memory` runs each variant in a fresh process, the only way to see its peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rectifiers.amp import AmpChoice, model_step_probe, resolve_amp
from rectifiers.interleave import time_interleaved
from rectifiers.machine import onednn_has_bf16

__all__ = [
    "PRESET_CASES",
    "VARIANTS",
    "StepCase",
    "bench_loader_vs_step",
    "bench_step",
    "default_cases",
    "format_loader_vs_step",
    "format_memory_table",
    "format_step_table",
    "make_step",
    "measure_step_memory",
]

VARIANTS = ("trainer/prelu", "trainer/relu", "plain/prelu", "plain/relu")


@dataclass(frozen=True)
class StepCase:
    """One model at one input size, built as `create_model(model, stem="small", ...)`."""

    label: str  # e.g. "net14 mnist"
    model: str  # registry name
    width: float  # conv channel multiplier
    fc_width: int  # units of fc1 and fc2
    in_chans: int
    size: int  # input side in pixels (the training crop)
    classes: int = 10
    batch: int = 128


# The small-image settings of the presets (configs/*.toml); the experiments use the same nets.
PRESET_CASES: dict[str, dict[str, Any]] = {
    "mnist": {"width": 0.25, "fc_width": 256, "in_chans": 1, "size": 28, "classes": 10},
    "cifar10": {"width": 0.5, "fc_width": 512, "in_chans": 3, "size": 32, "classes": 10},
    "tinyimagenet": {"width": 0.5, "fc_width": 1024, "in_chans": 3, "size": 56, "classes": 200},
}


def default_cases(
    models: Sequence[str] = ("net14", "net22", "net30"),
    presets: Sequence[str] = ("mnist", "cifar10"),
    batch: int = 128,
) -> list[StepCase]:
    """Every model at every preset's size, e.g. `net22 cifar10` = net22, width 0.5, 32 px, 3 channels."""
    unknown = [p for p in presets if p not in PRESET_CASES]
    if unknown:
        raise ValueError(f"unknown preset(s) {unknown}; choose from {', '.join(PRESET_CASES)}")
    return [
        StepCase(label=f"{m} {p}", model=m, batch=batch, **PRESET_CASES[p]) for p in presets for m in models
    ]


# ------------------------------------------------------------------------------------ the steps


def _build(case: StepCase, act: str) -> nn.Module:
    from rectifiers.models import create_model

    torch.manual_seed(0)
    return create_model(
        case.model,
        stem="small",
        width=case.width,
        fc_width=case.fc_width,
        num_classes=case.classes,
        in_chans=case.in_chans,
        act=act,
    )


def _batch(case: StepCase, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(case.batch, case.in_chans, case.size, case.size, generator=gen)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, torch.randint(0, case.classes, (case.batch,), generator=gen)


def _swap_to_torch_prelu(model: nn.Module) -> nn.Module:
    from rectifiers.activations import PReLU

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, PReLU):
                theirs = nn.PReLU(child.num_parameters)
                theirs.load_state_dict(child.state_dict())
                setattr(module, name, theirs)
    return model


def make_step(case: StepCase, variant: str, amp_mode: str = "auto") -> Callable[[], None]:
    """A closure that runs one training step of ``variant`` (see the module docstring) on a fixed batch;
    ``amp_mode`` ("auto", "off", "bf16") sets the trainer variants' autocast as `train.amp` does."""
    kind, _, act = variant.partition("/")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if kind == "plain":
        model = _build(case, act)
        if act == "prelu":
            _swap_to_torch_prelu(model)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        images, targets = _batch(case, channels_last=False)

        def plain_step() -> None:
            loss = F.cross_entropy(model(images), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return plain_step

    from rectifiers.optim import param_groups
    from rectifiers.step_tally import READ_EVERY, StepTally

    model = _build(case, act).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(param_groups(model, 5e-4), lr=0.01, momentum=0.9)
    amp = step_precision(case, variant, amp_mode, model).dtype
    scaler = torch.amp.GradScaler("cpu", enabled=False)  # as the trainer's on a CPU
    images, targets = _batch(case, channels_last=True)
    tally = StepTally(torch.device("cpu"))

    def trainer_step() -> None:  # the body of engine.Trainer._train_epoch's loop
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), targets)
        tally.add_loss(loss)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        tally.add_counts(loss, logits, targets)
        if len(tally) >= READ_EVERY and tally.read(False, lambda t: t).first_non_finite is not None:
            raise RuntimeError("non-finite loss in the benchmark")

    return trainer_step


def step_precision(
    case: StepCase, variant: str, amp_mode: str = "auto", model: nn.Module | None = None
) -> AmpChoice:
    """The precision ``variant`` runs in: float32 for the plain loop; for the trainer, what
    `train.amp = amp_mode` picks for this model (on a CPU without AMX "auto" times the model, once:
    the answer is cached)."""
    kind, _, act = variant.partition("/")
    if kind == "plain":
        return AmpChoice(None, "the plain loop runs in float32")
    model = model if model is not None else _build(case, act).to(memory_format=torch.channels_last)
    key = {"name": case.model, "act": act, "stem": "small", "width": case.width, "fc_width": case.fc_width}
    key |= {"in_chans": case.in_chans, "num_classes": case.classes, "crop": case.size, "batch": case.batch}
    key["channels_last"] = True
    shape = (case.batch, case.in_chans, case.size, case.size)
    probe = model_step_probe(model, key, shape, case.classes, torch.channels_last)
    return resolve_amp(amp_mode, torch.device("cpu"), deterministic=False, probe=probe)


def _step_flops(case: StepCase) -> float:
    """≈ 6 × multiply-adds × batch: forward (2 flops per multiply-add), input and weight gradients."""
    from rectifiers.complexity import complexity

    with torch.device("meta"):
        from rectifiers.models import create_model

        net = create_model(
            case.model,
            stem="small",
            width=case.width,
            fc_width=case.fc_width,
            num_classes=case.classes,
            in_chans=case.in_chans,
            init=False,
        )
    macs = complexity(net, (case.in_chans, case.size, case.size)).total_macs
    return 6.0 * macs * case.batch


def _paired(num: list[float], den: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


def bench_step(
    cases: Sequence[StepCase],
    variants: Sequence[str] = VARIANTS,
    repeats: int = 10,
    warmup: int = 2,
    peaks: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Time one training step of every variant on every case, interleaved; one row per (case, variant).

    Each row: median and min wall ms, median CPU ms, images/s (wall and per CPU second), GFLOP/s and,
    given ``peaks`` ({"float32": GFLOP/s, "bfloat16": GFLOP/s} from `bench.matmul_peak`), the
    fraction of the peak of the variant's compute dtype. The trainer/prelu row also carries the
    paired ratios ``prelu_vs_relu`` (trainer/relu time ÷ trainer/prelu time: ≥ 1 means PReLU is as
    fast), ``vs_plain`` (plain/prelu time ÷ trainer/prelu time) and ``vs_plain_relu`` (plain/relu
    time ÷ trainer/prelu time: the PReLU trainer against a hand-written ReLU loop), each on wall and
    CPU time.
    """
    from rectifiers.runtime import keep_freed_memory

    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    keep_freed_memory()  # as the trainer does
    rows: list[dict[str, Any]] = []
    for case in cases:
        wall, cpu = time_interleaved({v: make_step(case, v) for v in variants}, repeats, warmup)
        flops = _step_flops(case)
        for v in variants:
            w, c = statistics.median(wall[v]), statistics.median(cpu[v])
            precision = step_precision(case, v)  # the trainer's choice was measured and cached above
            dtype = precision.name
            row: dict[str, Any] = {
                "case": case.label,
                "variant": v,
                "wall_ms": w * 1e3,
                "min_wall_ms": min(wall[v]) * 1e3,
                "cpu_ms": c * 1e3,
                "images_per_s": case.batch / w,
                "images_per_cpu_s": case.batch / c,
                "gflops": flops / w / 1e9,
                "compute_dtype": dtype,
                "precision_reason": precision.reason,
                "peak_fraction": (flops / w / 1e9) / peaks[dtype] if peaks and dtype in peaks else None,
                "repeats": repeats,
                **asdict(case),
            }
            if v == "trainer/prelu":
                if "trainer/relu" in wall:
                    row["prelu_vs_relu"] = _paired(wall["trainer/relu"], wall[v])
                    row["prelu_vs_relu_cpu"] = _paired(cpu["trainer/relu"], cpu[v])
                if "plain/prelu" in wall:
                    row["vs_plain"] = _paired(wall["plain/prelu"], wall[v])
                    row["vs_plain_cpu"] = _paired(cpu["plain/prelu"], cpu[v])
                if "plain/relu" in wall:
                    row["vs_plain_relu"] = _paired(wall["plain/relu"], wall[v])
                    row["vs_plain_relu_cpu"] = _paired(cpu["plain/relu"], cpu[v])
            rows.append(row)
    return rows


def format_step_table(rows: list[dict[str, Any]]) -> str:
    """The rows of `bench_step` as an aligned table, the paired ratios in the last columns."""
    header = ["case", "variant", "dtype", "ms wall", "ms cpu", "img/s", "img/cpu-s", "GFLOP/s", "% peak"]
    header += ["prelu÷relu", "(cpu)", "÷plain", "(cpu)", "÷plain relu", "(cpu)"]

    def opt(row: dict[str, Any], key: str, fmt: str) -> str:
        v = row.get(key)
        return "" if v is None else format(v, fmt)

    body = [
        [
            r["case"],
            r["variant"],
            r["compute_dtype"],
            f"{r['wall_ms']:.0f}",
            f"{r['cpu_ms']:.0f}",
            f"{r['images_per_s']:.0f}",
            f"{r['images_per_cpu_s']:.0f}",
            f"{r['gflops']:.1f}",
            "" if r["peak_fraction"] is None else f"{100 * r['peak_fraction']:.1f}",
            opt(r, "prelu_vs_relu", ".3f"),
            opt(r, "prelu_vs_relu_cpu", ".3f"),
            opt(r, "vs_plain", ".2f"),
            opt(r, "vs_plain_cpu", ".2f"),
            opt(r, "vs_plain_relu", ".2f"),
            opt(r, "vs_plain_relu_cpu", ".2f"),
        ]
        for r in rows
    ]
    return _table(header, body, left=3)


def _table(header: list[str], body: list[list[str]], left: int) -> str:
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if c < left else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


# ---------------------------------------------------------------------------------------- memory


def measure_step_memory(
    case: StepCase,
    variant: str,
    steps: int = 3,
    keep_memory: bool | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Peak RSS of ``steps`` training steps of ``variant``, measured in a fresh Python process.

    ``keep_memory`` applies `keep_freed_memory` first (default: for the trainer variants, as the
    trainer does). Returns MiB: ``setup_rss_mib`` (resident once torch, the model, the optimizer and
    the batch exist) and ``peak_rss_mib`` (the peak while the steps run); and per step after the
    first: minor page faults, CPU, system and wall seconds. Linux only (/proc/self).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if not Path("/proc/self/clear_refs").exists():
        raise ValueError("measuring a step's peak RSS needs Linux's /proc/self/clear_refs")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (the first step is not counted per step), got {steps}")
    if keep_memory is None:
        keep_memory = variant.startswith("trainer")
    spec = {"case": asdict(case), "variant": variant, "steps": steps, "keep": keep_memory, "threads": threads}
    code = "import sys, rectifiers.bench_step as b; b._memory_child(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory measurement of {variant} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"case": case.label, "variant": variant, "keep_freed_memory": keep_memory, **result}


def _status_mib(key: str) -> float:
    """A ``Vm*`` line of /proc/self/status (kB) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"/proc/self/status has no {key}")


def _memory_child(spec_json: str) -> None:
    spec = json.loads(spec_json)
    if spec["threads"]:
        torch.set_num_threads(int(spec["threads"]))
    if spec["keep"]:
        from rectifiers.runtime import keep_freed_memory

        keep_freed_memory()
    step = make_step(StepCase(**spec["case"]), spec["variant"])
    # ru_maxrss would carry the parent's peak over fork and exec; VmHWM, reset here, is this
    # process's own peak from now on.
    setup = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    step()
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(spec["steps"] - 1):
        step()
    r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    n = spec["steps"] - 1
    result = {
        "setup_rss_mib": setup,
        "peak_rss_mib": _status_mib("VmHWM"),
        "minor_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / n,
        "cpu_s_per_step": (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / n,
        "sys_s_per_step": (r1.ru_stime - r0.ru_stime) / n,
        "wall_s_per_step": (w1 - w0) / n,
    }
    print(json.dumps(result))


def format_memory_table(rows: list[dict[str, Any]]) -> str:
    header = ["case", "variant", "malloc", "setup MiB", "step peak MiB", "faults/step", "cpu s", "sys s"]
    header.append("wall s")
    body = [
        [
            r["case"],
            r["variant"],
            "keep" if r["keep_freed_memory"] else "default",
            f"{r['setup_rss_mib']:.0f}",
            f"{r['peak_rss_mib']:.0f}",
            f"{r['minor_faults_per_step']:.0f}",
            f"{r['cpu_s_per_step']:.3f}",
            f"{r['sys_s_per_step']:.3f}",
            f"{r['wall_s_per_step']:.3f}",
        ]
        for r in rows
    ]
    return _table(header, body, left=3)


# ------------------------------------------------------------------------------- loader vs step

# loader.BENCH_PRESETS name -> the preset whose model the loader feeds
_LOADER_PRESET = {"mnist5k": "mnist", "cifar10": "cifar10", "tinyimagenet": "tinyimagenet"}


def bench_loader_vs_step(
    data_root: str | None,
    batch_size: int = 128,
    max_batches: int = 50,
    repeats: int = 3,
    step_repeats: int = 5,
    num_workers: int = 2,
    files: bool = True,
) -> list[dict[str, Any]]:
    """Training-loader images/s (`loader.benchmark_loaders`) beside the trainer step's images/s on the
    net14 of the matching preset (the default model of mnist, cifar10 and tinyimagenet runs); one row
    per loader measurement with ``step_images_per_s`` and ``loader_vs_step`` (target: >= 2)."""
    from rectifiers.loader import benchmark_loaders

    loader_rows = [
        r
        for r in benchmark_loaders(
            data_root,
            batch_size=batch_size,
            max_batches=max_batches,
            num_workers=num_workers,
            files=files,
            repeats=repeats,
        )
        if r["mode"] == "train"
    ]
    step_rate: dict[str, float] = {}
    for name in dict.fromkeys(r["data"] for r in loader_rows):
        preset = _LOADER_PRESET[name]
        case = StepCase(label=f"net14 {preset}", model="net14", batch=batch_size, **PRESET_CASES[preset])
        (row,) = bench_step([case], ("trainer/prelu",), repeats=step_repeats, warmup=1)
        step_rate[name] = row["images_per_s"]
    return [
        {
            **r,
            "step_images_per_s": step_rate[r["data"]],
            "loader_vs_step": r["images_per_s"] / step_rate[r["data"]],
        }
        for r in loader_rows
    ]


def format_loader_vs_step(rows: list[dict[str, Any]]) -> str:
    header = ["data", "source", "workers", "loader img/s", "(median)", "step img/s", "loader÷step"]
    body = [
        [
            r["data"],
            r["source"],
            str(r["workers"]),
            f"{r['images_per_s']:.0f}",
            f"{r['images_per_s_median']:.0f}",
            f"{r['step_images_per_s']:.0f}",
            f"{r['loader_vs_step']:.1f}",
        ]
        for r in rows
    ]
    return _table(header, body, left=2)


# ----------------------------------------------------------------------------------- the suite

SUITES = ("prelu", "step", "loader", "all")


def run_suite(
    what: str,
    say: Callable[[str], None],
    *,
    repeats: int = 10,
    models: Sequence[str] = ("net14", "net22", "net30"),
    presets: Sequence[str] = ("mnist", "cifar10"),
    batch: int = 128,
    memory: bool = True,
    memory_steps: int = 5,
    data_root: str | None = None,
    prelu_shape: Sequence[int] = (64, 64, 56, 56),
    device: str = "cpu",
) -> dict[str, Any]:
    """Run the benchmarks ``what`` names ("prelu", "step", "loader" or "all"), handing each table to
    ``say`` as it is done (the CLI prints them); returns every row, with the machine and the matmul
    peaks, for a JSON record. On a CUDA ``device`` only the PReLU op (and the peaks) can run: the
    step and loader benchmarks measure the CPU trainer."""
    from rectifiers.bench import (
        bench_prelu_op,
        format_bench_table,
        format_machine,
        machine_info,
        matmul_peak,
    )

    if what not in SUITES:
        raise ValueError(f"unknown benchmark {what!r}; choose from {', '.join(SUITES)}")
    if device != "cpu" and what != "prelu":
        raise ValueError(f"bench {what} measures the CPU trainer; on --device {device} only 'prelu' runs")
    info = machine_info(device)
    say(format_machine(info))
    # Without oneDNN's bf16 kernels a bf16 matmul takes minutes and no step runs in bf16: not measured.
    dtypes = ("float32", "bfloat16") if device != "cpu" or onednn_has_bf16() else ("float32",)
    peaks = {dtype: matmul_peak(dtype, device=device) for dtype in dtypes}
    say(
        "matmul peak (best of 5, 2048²): "
        + ", ".join(f"{dtype} {peaks[dtype]:.0f} GFLOP/s" for dtype in dtypes)
        + ("" if "bfloat16" in peaks else " (bfloat16: oneDNN has no bf16 kernels here)")
    )
    out: dict[str, Any] = {"machine": info, "matmul_peak_gflops": peaks}
    if what in ("prelu", "all"):
        rows = bench_prelu_op(shape=tuple(prelu_shape), repeats=repeats, device=device)
        out["prelu"] = rows
        say(f"\nPReLU op on {tuple(prelu_shape)}, median of {repeats} interleaved repeats:")
        say(format_bench_table(rows))
    if what in ("step", "all"):
        cases = default_cases(models, presets, batch=batch)
        rows = bench_step(cases, repeats=repeats, peaks=peaks)
        out["step"] = rows
        say(
            f"\ntraining step, batch {batch}, median of {repeats} interleaved repeats "
            "(prelu÷relu, ÷plain, ÷plain relu: medians of paired ratios of speed; targets: prelu÷relu "
            ">= 0.97, ÷plain >= 3.0 with AMX and >= 1.3 without, ÷plain relu >= 1):"
        )
        say(format_step_table(rows))
        if memory:
            mem = [
                measure_step_memory(
                    case, variant, steps=memory_steps, keep_memory=keep, threads=torch.get_num_threads()
                )
                for case in cases
                for variant, keep in (
                    ("trainer/prelu", True),
                    ("trainer/prelu", False),
                    ("plain/prelu", False),
                )
            ]
            out["memory"] = mem
            say(
                f"\npeak RSS while {memory_steps} steps run, each variant in a fresh process; faults, cpu, "
                "sys and wall per step after the first (target: trainer <= plain):"
            )
            say(format_memory_table(mem))
    if what in ("loader", "all"):
        rows = bench_loader_vs_step(data_root, batch_size=batch, step_repeats=max(3, repeats // 2))
        out["loader"] = rows
        say("\ntraining loader vs the trainer's step on the preset's net14 (target: loader÷step >= 2):")
        say(format_loader_vs_step(rows))
    out["machine_after"] = machine_info(device)
    load = out["machine_after"]["load_average"]
    if load:
        say(f"\nload average at the end: {' '.join(f'{v:.1f}' for v in load)}")
    return out
