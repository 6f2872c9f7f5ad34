"""What a benchmark figure depends on: the machine (CPU model and bf16 hardware, cores, threads,
load) and the rate its matmuls attain."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

from rectifiers.machine import CpuIsa, cpu_isa, cpu_model, versions

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What a benchmark figure depends on: CPU model and its bf16 hardware (AMX, AVX512_BF16, the
    oneDNN cap `ONEDNN_MAX_CPU_ISA`), cores, torch threads, the load average at the time of the call
    (other processes on a shared machine), torch and Python versions."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "isa": dataclasses.asdict(cpu_isa()),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": None if load is None else [round(v, 2) for v in load],
        **versions(),
        "machine": platform.machine(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def format_machine(info: dict[str, Any]) -> str:
    """One line: ``cpu X (AMX no, AVX512_BF16 yes), 2 cores, 2 threads, load 3.1 2.9 2.5, torch
    2.13.0+cpu, python 3.11.7``; the oneDNN cap follows the ISA flags when it is set."""
    load = info.get("load_average")
    parts = [
        f"cpu {info['cpu']} ({CpuIsa(**info['isa']).describe()})",
        f"{info['cores']} cores",
        f"{info['threads']} threads",
        "load " + (" ".join(f"{v:.1f}" for v in load) if load else "n/a"),
        f"torch {info['torch']}",
        f"python {info['python']}",
    ]
    if "gpu" in info:
        parts.append(f"gpu {info['gpu']}")
    return ", ".join(parts)


def matmul_peak(dtype: str = "float32", size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """The machine's attainable matmul rate in GFLOP/s: the best of ``repeats`` square ``size`` matmuls
    (2·size³ flops each) after one warm-up. The best, not the median, since a peak is what the
    machine can do when nothing else disturbs it; a step's fraction of it says how much of the
    machine the step uses."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    if size < 1 or repeats < 1:
        raise ValueError(f"size and repeats must be >= 1, got {size}, {repeats}")
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(size, size, generator=gen, device=dev).to(DTYPES[dtype])
    b = torch.randn(size, size, generator=gen, device=dev).to(DTYPES[dtype])
    out = torch.empty_like(a)
    torch.mm(a, b, out=out)
    best = min(_timed(lambda: torch.mm(a, b, out=out), dev) for _ in range(repeats))
    return 2.0 * size**3 / best / 1e9


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start
