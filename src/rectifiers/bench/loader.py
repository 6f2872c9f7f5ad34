"""The loader's images/s on the small presets, alone and beside the trainer's step (target: at least
twice the step's, so the step never waits for data)."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rectifiers.bench.machine_info import synchronize
from rectifiers.bench.step import default_cases
from rectifiers.bench.table import Column, rows_table
from rectifiers.config import load_config
from rectifiers.data import ImageDataset, open_dataset
from rectifiers.loader import BatchLoader
from rectifiers.step_timing import time_steps
from rectifiers.transforms import EvalTransform, Normalize, TrainTransform


def measure_loader(
    loader: BatchLoader, max_batches: int | None = None, warmup: int = 2, repeats: int = 1
) -> dict[str, float]:
    """Throughput of iterating `loader`: `repeats` passes of one epoch (or `max_batches` batches),
    each after `warmup` untimed batches. Returns {"images" (per pass), "images_per_s" (the best pass:
    the least disturbed by other processes on a shared machine), "images_per_s_median"}. On CUDA the
    timing ends with a synchronize."""
    rates = []
    for _ in range(max(1, repeats)):
        it = iter(loader)
        for _ in range(min(warmup, len(loader) - 1)):
            next(it)
        images = 0
        t0 = time.perf_counter()
        for k, (x, _) in enumerate(it):
            images += x.shape[0]
            if max_batches is not None and k + 1 >= max_batches:
                break
        if loader.device is not None:
            synchronize(loader.device)
        seconds = time.perf_counter() - t0
        rates.append(images / seconds if seconds > 0 else math.inf)
    return {"images": images, "images_per_s": max(rates), "images_per_s_median": float(np.median(rates))}


# The small sets the benchmark times -> (the training preset whose data settings it loads them with
# and whose net14 `bench_loader_vs_step` times, the data spec with {root} = the shared data folder).
BENCH_PRESETS: dict[str, tuple[str, str]] = {
    "mnist5k": ("mnist", "mnist5k"),
    "cifar10": ("cifar10", "folder:{root}/cifar10/CIFAR-10-images.zip"),
    "tinyimagenet": (
        "tinyimagenet",
        "tinyimagenet:{root}/tiny-imagenet-200-subset/tiny-imagenet-200-subset.zip",
    ),
}


def benchmark_loaders(
    data_root: str | Path | None = None,
    batch_size: int = 128,
    max_batches: int = 100,
    num_workers: int = 2,
    device: torch.device | str | None = None,
    files: bool = True,
    repeats: int = 3,
    cold_open: bool = False,
) -> list[dict[str, Any]]:
    """Loader images/s for the small presets (mnist5k; CIFAR-10 and Tiny ImageNet when `data_root`
    holds them): augmented train batches and eval batches from memory and, with `files`, the same sets
    read as image files by `num_workers` DataLoader workers. `cold_open` first opens each set with an
    empty cache (timing the one-time decode). One dict per measurement, with the open times."""
    rows: list[dict[str, Any]] = []
    for name, (preset, spec_form) in BENCH_PRESETS.items():
        spec = spec_form
        if "{root}" in spec_form:
            if data_root is None:
                continue
            spec = spec_form.format(root=Path(data_root))
            if not Path(spec.split(":", 1)[1]).exists():
                continue
        cold_s = None
        if cold_open:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                open_dataset(spec, "train", cache_dir=tmp)
                cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = open_dataset(spec, "train")
        open_s = time.perf_counter() - t0
        norm = Normalize.from_dataset(ds, max_samples=5000)
        d = load_config(preset).data
        crop, scale = d.crop, (d.scale_min, d.scale_max)
        train_tf = TrainTransform(crop, scale, flip=d.flip, pca_std=d.pca_std, normalize=norm)
        eval_tf = EvalTransform(crop, crop, normalize=norm)
        variants: list[tuple[str, ImageDataset, int]] = [("memory", ds, 0)]
        if files and spec != spec_form:
            variants.append(("files", open_dataset(spec, "train", memory_budget=0), num_workers))
        for kind, d, workers in variants:
            for train, tf in ((True, train_tf), (False, eval_tf)):
                loader = BatchLoader(
                    d, batch_size, train=train, transform=tf, num_workers=workers, device=device
                )
                limit = max_batches if kind == "memory" else max(10, max_batches // 5)
                m = measure_loader(loader, max_batches=limit, repeats=repeats if kind == "memory" else 1)
                rows.append(
                    {
                        "data": name,
                        "source": kind,
                        "mode": "train" if train else "eval",
                        "crop": crop,
                        "scale": list(scale),
                        "batch_size": batch_size,
                        "workers": workers,
                        "open_s": open_s if kind == "memory" else None,
                        "open_cold_s": cold_s if kind == "memory" else None,
                        **m,
                    }
                )
    return rows


def format_benchmark(rows: list[dict[str, Any]]) -> str:
    """The rows of `benchmark_loaders` as an aligned text table."""
    columns: list[Column] = [
        ("data", "data", ""),
        ("source", "source", ""),
        ("mode", "mode", ""),
        ("crop", "crop", ""),
        ("batch", "batch_size", ""),
        ("workers", "workers", ""),
        ("images/s", "images_per_s", ".0f"),
        ("median", "images_per_s_median", ".0f"),
        ("open s", "open_s", ".2f"),
        ("cold s", "open_cold_s", ".2f"),
    ]
    return rows_table(rows, columns, left=3)


def bench_loader_vs_step(
    data_root: str | None,
    batch_size: int = 128,
    max_batches: int = 50,
    repeats: int = 3,
    step_repeats: int = 5,
    num_workers: int = 2,
    files: bool = True,
) -> list[dict[str, Any]]:
    """Training-loader images/s (`benchmark_loaders`) beside the trainer step's images/s on the
    net14 of the matching preset (the default model of mnist, cifar10 and tinyimagenet runs); one row
    per loader measurement with ``step_images_per_s`` and ``loader_vs_step`` (target: >= 2)."""
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
        cases = default_cases(["net14"], [BENCH_PRESETS[name][0]], batch=batch_size)
        (row,) = time_steps(cases, ("trainer/prelu",), repeats=step_repeats, warmup=1)
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
    columns: list[Column] = [
        ("data", "data", ""),
        ("source", "source", ""),
        ("workers", "workers", ""),
        ("loader img/s", "images_per_s", ".0f"),
        ("(median)", "images_per_s_median", ".0f"),
        ("step img/s", "step_images_per_s", ".0f"),
        ("loader÷step", "loader_vs_step", ".1f"),
    ]
    return rows_table(rows, columns, left=2)
