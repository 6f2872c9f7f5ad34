"""What `rectifiers bench` runs: the machine line, the matmul peak, then each benchmark's table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from rectifiers.bench import SUITES
from rectifiers.bench.loader import bench_loader_vs_step, format_loader_vs_step
from rectifiers.bench.machine_info import format_machine, machine_info, matmul_peak
from rectifiers.bench.prelu_op import bench_prelu_op, format_bench_table
from rectifiers.bench.step import default_cases, format_memory_table, format_step_table, measure_step_memory
from rectifiers.machine import onednn_has_bf16
from rectifiers.step_timing import time_steps


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
        rows = time_steps(cases, repeats=repeats, peaks=peaks)
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
