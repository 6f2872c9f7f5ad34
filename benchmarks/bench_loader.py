"""Loader throughput (images/s) for the small presets: mnist5k, CIFAR-10 and Tiny ImageNet.

    python benchmarks/bench_loader.py [--data-root ../shared/data] [--batch-size 128] [--cold]

For each set: augmented training batches (random scale, crop, flip, PCA colour, normalization) and
evaluation batches (center crop, normalization) from the in-memory uint8 cache, then the same set read
as image files by DataLoader worker processes (`--workers`). "images/s" is the best of `--repeats`
passes (the least disturbed by other processes on a shared machine), "median" their median; "open s"
is opening the set from the disk cache, "cold s" (with --cold) the first open that decodes every file.
Compare the numbers with the training step's images/s (target: loader >= 2x the step's).
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch

from rectifiers.bench.loader import benchmark_loaders, format_benchmark

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT, help="folder holding cifar10/ etc.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=100, help="timed batches per pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the file path")
    parser.add_argument("--device", default=None, help="produce batches on this device (e.g. cuda)")
    parser.add_argument("--no-files", action="store_true", help="skip the image-file (worker) path")
    parser.add_argument("--cold", action="store_true", help="also time a first open with an empty cache")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    root = args.data_root if args.data_root.is_dir() else None
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"{platform.processor() or platform.machine()}, data root: {root or 'absent (mnist5k only)'}"
    )
    rows = benchmark_loaders(
        root,
        batch_size=args.batch_size,
        max_batches=args.batches,
        num_workers=args.workers,
        device=args.device,
        files=not args.no_files,
        repeats=args.repeats,
        cold_open=args.cold,
    )
    print(format_benchmark(rows))


if __name__ == "__main__":
    main()
