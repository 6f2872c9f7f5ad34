"""Soak: many short epochs in one process, resident memory (RSS) sampled after each; does it stay flat?

    python benchmarks/soak.py [--epochs 50] [--trim] [--set key=value ...] [--json soak.json]

A leak per epoch (a figure never closed, a growing list of metrics, checkpoints or loader state held
on to) shows as RSS that keeps rising. Each epoch here does everything a long run does once per epoch:
train, validate, append to metrics.jsonl, redraw curves.png, save a checkpoint (plus mid-epoch saves),
link last.pt/best.pt and prune old checkpoints. The first epochs allocate for good (thread pools,
kernels, matplotlib), so growth is measured from the median of epochs 4-6 to the median of the last
three; the least-squares slope over the same range says whether it is still climbing. Target: growth
within 5%.

RSS counts memory the allocator has freed but kept (glibc keeps freed heap pages for reuse), so it can
climb for a while and then level off with no object leaking. `--trim` tells the two apart: before each
sample it runs the garbage collector and glibc's `malloc_trim(0)`, which hands free pages back to the
system, so what remains is the memory live objects hold; a leak grows that too.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from rectifiers import distributed
from rectifiers.config import load_config, parse_override
from rectifiers.engine import Trainer
from rectifiers.runtime import keep_freed_memory

# A short epoch that still exercises every per-epoch path: 16 steps of a narrow net14 on fake 16-px images.
DEFAULTS = {
    "data.spec": "fake:n=512,val=128,size=16,classes=10,channels=3,seed=0",
    "data.crop": "16",
    "data.scale_min": "16",
    "data.scale_max": "18",
    "data.eval_resize": "16",
    "model.width": "0.125",
    "model.fc_width": "64",
    "train.batch_size": "32",
    "train.save_every": "8",
    "train.keep_last": "2",
    "train.quiet": "true",
    "optim.schedule": "constant",
    "train.amp": "off",
}
TARGET = 0.05


def rss_bytes() -> int:
    """The process's current resident set size (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def release_free_memory() -> bool:
    """gc, then glibc's malloc_trim(0); False where there is no glibc."""
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


class SoakTrainer(Trainer):
    """The real trainer, recording RSS and the wall clock each time an epoch has been logged."""

    samples: list[dict[str, float]]
    trim: bool

    def _log(self, metrics: dict[str, Any], writer: Any) -> None:
        super()._log(metrics, writer)
        if self.trim and not release_free_memory():
            raise SystemExit("--trim needs glibc's malloc_trim")
        self.samples.append({"epoch": self.epoch, "rss_mb": rss_bytes() / 2**20, "time": time.time()})


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def soak(epochs: int, overrides: dict[str, str], out: Path, trim: bool = False) -> dict[str, Any]:
    config = load_config(None, {**DEFAULTS, **overrides, "train.epochs": str(epochs), "train.out": str(out)})
    keep_freed_memory()  # as `rectifiers train` does (fit itself leaves the allocator alone)
    trainer = SoakTrainer(config, distributed.setup(config.train.device))
    trainer.samples, trainer.trim = [], trim
    started, rss_start = time.time(), rss_bytes() / 2**20
    try:
        result = trainer.run()
    finally:
        distributed.teardown()
    rss = [s["rss_mb"] for s in trainer.samples]
    if len(rss) < 9:
        raise SystemExit(f"need at least 9 epochs to measure growth, got {len(rss)}")
    base, final = statistics.median(rss[3:6]), statistics.median(rss[-3:])
    epochs_measured = [s["epoch"] for s in trainer.samples[3:]]
    return {
        "epochs": len(rss),
        "trim": trim,
        "status": result["status"],
        "seconds": time.time() - started,
        "rss_mb_before_run": rss_start,
        "rss_mb": rss,
        "baseline_mb": base,
        "final_mb": final,
        "growth": (final - base) / base,
        "slope_mb_per_epoch": slope(epochs_measured, rss[3:]),
        "peak_mb": max(rss),
        "final_val_top1_err": result["metrics"].get("val_top1_err"),
        "config": {**DEFAULTS, **overrides},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--out", type=Path, help="run directory (default: a temporary one, removed)")
    parser.add_argument("--json", type=Path, help="also write the samples and the summary here")
    parser.add_argument("--trim", action="store_true", help="gc + malloc_trim(0) before each sample")
    args = parser.parse_args()
    overrides = dict(parse_override(item) for item in args.set)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        report = soak(args.epochs, overrides, args.out or Path(tmp) / "run", trim=args.trim)
    r = report
    print(f"soak: {r['epochs']} epochs in {r['seconds']:.0f} s ({r['status']}), torch {r['torch']}")
    rss_kind = "after gc + malloc_trim" if r["trim"] else "raw"
    print(f"machine: {r['machine']}, {r['threads']} torch threads; RSS {rss_kind}")
    print("RSS (MB) after each epoch: " + " ".join(f"{v:.0f}" for v in r["rss_mb"]))
    flat = abs(r["growth"]) <= TARGET
    print(
        f"RSS before the run {r['rss_mb_before_run']:.1f} MB; epochs 4-6 {r['baseline_mb']:.1f} MB; "
        f"last 3 {r['final_mb']:.1f} MB; growth {100 * r['growth']:+.2f}% (target within "
        f"{100 * TARGET:.0f}%: {'flat' if flat else 'NOT flat'}); slope {r['slope_mb_per_epoch']:+.3f} "
        f"MB/epoch; peak {r['peak_mb']:.1f} MB"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
