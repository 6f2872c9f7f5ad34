"""The step benchmark's cases and tables, and each variant's peak memory.

The speed comes from `step_timing.time_steps` (the trainer's own step against a plain loop);
`measure_step_memory` runs each variant in a fresh process, the only way to see its peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rectifiers.bench.table import Column, rows_table
from rectifiers.runtime import keep_freed_memory
from rectifiers.step_timing import StepCase, check_variants, make_step

# The small-image settings of the presets (configs/*.toml) and of the experiments' full runs
# (`experiments.recipe`: CIFAR-10's 28-px crops, width 0.125).
PRESET_CASES: dict[str, dict[str, Any]] = {
    "default": {"width": 0.5, "fc_width": 256, "in_chans": 1, "size": 28, "classes": 10},
    "mnist": {"width": 0.25, "fc_width": 256, "in_chans": 1, "size": 28, "classes": 10},
    "experiments": {"width": 0.125, "fc_width": 128, "in_chans": 3, "size": 28, "classes": 10},
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


def format_step_table(rows: list[dict[str, Any]]) -> str:
    """The rows of `step_timing.time_steps` as an aligned table, the paired ratios in the last columns."""
    columns: list[Column] = [
        ("case", "case", ""),
        ("variant", "variant", ""),
        ("dtype", "compute_dtype", ""),
        ("ms wall", "wall_ms", ".0f"),
        ("ms cpu", "cpu_ms", ".0f"),
        ("img/s", "images_per_s", ".0f"),
        ("img/cpu-s", "images_per_cpu_s", ".0f"),
        ("GFLOP/s", "gflops", ".1f"),
        ("% peak", lambda r: None if r["peak_fraction"] is None else 100 * r["peak_fraction"], ".1f"),
        ("prelu÷relu", "prelu_vs_relu", ".3f"),
        ("(cpu)", "prelu_vs_relu_cpu", ".3f"),
        ("÷plain", "vs_plain", ".2f"),
        ("(cpu)", "vs_plain_cpu", ".2f"),
        ("÷plain relu", "vs_plain_relu", ".2f"),
        ("(cpu)", "vs_plain_relu_cpu", ".2f"),
    ]
    return rows_table(rows, columns, left=3, missing="")


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
    check_variants([variant])
    if not Path("/proc/self/clear_refs").exists():
        raise ValueError("measuring a step's peak RSS needs Linux's /proc/self/clear_refs")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (the first step is not counted per step), got {steps}")
    if keep_memory is None:
        keep_memory = variant.startswith("trainer")
    spec = {"case": asdict(case), "variant": variant, "steps": steps, "keep": keep_memory, "threads": threads}
    code = "import sys, rectifiers.bench.step as b; b._memory_child(sys.argv[1])"
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
    columns: list[Column] = [
        ("case", "case", ""),
        ("variant", "variant", ""),
        ("malloc", lambda r: "keep" if r["keep_freed_memory"] else "default", ""),
        ("setup MiB", "setup_rss_mib", ".0f"),
        ("step peak MiB", "peak_rss_mib", ".0f"),
        ("faults/step", "minor_faults_per_step", ".0f"),
        ("cpu s", "cpu_s_per_step", ".3f"),
        ("sys s", "sys_s_per_step", ".3f"),
        ("wall s", "wall_s_per_step", ".3f"),
    ]
    return rows_table(rows, columns, left=3)
