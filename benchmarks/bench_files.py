"""Training from a generated folder of mixed-size JPEGs against the same step on in-memory images.

Makes `--images` training JPEGs (and a tenth as many for val) in a temporary folder with
`bench_decode.make_folder` (10 classes; shorter sides 160-320 px, aspects 0.75-1.33), then measures:

- listing: `open_dataset` of the folder with an empty cache (every header read) and again (cached);
- decode + augment images/s of one loader worker (one process, one thread): the 224 training crop
  of the paper's recipe (shorter side jittered in 256-512, JPEG draft mode as the loader uses it);
- training images/s (`rectifiers train --config imagenet_model_a`, narrowed by `--width`, for
  `--steps` steps; `images_per_s` of the run's partial-epoch metrics line) from the folder and from
  in-memory fake 224-px images (`fake:...,size=224`), in one process and in a 2-process torchrun
  launch, with one thread and `--workers` loader workers per process. Every launch starts with an
  empty cache folder shared by its ranks; each rank counts how often it listed the folder (read every
  header) and computed the normalisation statistics, which the table prints per rank.

    python benchmarks/bench_files.py [--images 2000] [--steps 16] [--width 0.0625] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_decode import images_per_s, make_folder, train_crop
from rectifiers.data import FileDataset, open_dataset
from rectifiers.transforms import TrainTransform

# Run by each rank: counts the listings and the statistics computations of this process in files
# named after its rank, then trains as `rectifiers` does.
RANK_SCRIPT = """
import os, sys
from pathlib import Path

from rectifiers import data
from rectifiers.cli import main
from rectifiers.transforms import Normalize

out, rank = Path(sys.argv[1]), os.environ.get("RANK", "0")


def counting(what, function, label=lambda args: "all"):
    def counted(*args, **kwargs):
        with open(out / f"{what}-rank{rank}", "a") as f:
            f.write(f"{label(args)}\\n")
        return function(*args, **kwargs)

    return counted


data._probe = counting("listed", data._probe, lambda args: args[0].split)  # _probe(file_split, listing)
Normalize._measure = classmethod(counting("statistics", Normalize._measure.__func__))
raise SystemExit(main(sys.argv[2:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listing_times(root: Path, cache: Path) -> list[float]:
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        open_dataset(f"folder:{root}", "train", cache_dir=cache, workers=1, memory_budget=0)
        times.append(time.perf_counter() - t0)
    return times


def worker_images_per_s(root: Path, cache: Path) -> float:
    ds = open_dataset(f"folder:{root}", "train", cache_dir=cache, workers=1, memory_budget=0)
    assert isinstance(ds, FileDataset)
    train = TrainTransform(224, (256, 512), pca_std=0)
    table = train.sample_params(len(ds), torch.Generator().manual_seed(0))
    rows = [
        {"scale": int(s), "offset": o, "flip": bool(f)}
        for s, o, f in zip(
            table["scale"].tolist(), table["offset"].tolist(), table["flip"].tolist(), strict=True
        )
    ]
    return images_per_s(ds, lambda d, i, draft: train_crop(d, i, draft, train, rows), draft=True)


def train_run(work: Path, spec: str, nproc: int, args: argparse.Namespace) -> dict[str, object]:
    """One `rectifiers train` launch: its images/s and how often each rank listed and measured."""
    work.mkdir(parents=True)
    script = work / "rank.py"
    script.write_text(RANK_SCRIPT)
    overrides = {
        "data.spec": spec,
        "data.workers": args.workers,
        "model.width": args.width,
        "model.fc_width": 256,
        "train.batch_size": args.batch,
        "train.max_steps": args.steps,
        "train.epochs": 1,
        "train.quiet": "true",
        "train.out": work / "run",
    }
    launcher = [
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc}",
        "--nnodes=1",
        f"--master-port={free_port()}",
    ]
    command = [sys.executable, *(launcher if nproc > 1 else []), str(script), str(work)]
    command += ["train", "--config", "imagenet_model_a", *(f"--set={k}={v}" for k, v in overrides.items())]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "RECTIFIERS_CACHE": str(work / "cache"),
        "RECTIFIERS_MEMORY_BUDGET": "0",  # the folder stays on disk, decoded by the loader's workers
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-4000:]}")
    lines = [json.loads(x) for x in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    rate = [x["images_per_s"] for x in lines if "images_per_s" in x][-1]

    def counts(what: str) -> dict[str, list[int]]:
        """{split (or "all"): [times on rank 0, rank 1, ...]}"""
        files = [work / f"{what}-rank{r}" for r in range(nproc)]
        lines = [f.read_text().split() if f.exists() else [] for f in files]
        keys = sorted({k for ls in lines for k in ls})
        return {k: [ls.count(k) for ls in lines] for k in keys}

    return {"images_per_s": rate, "listed": counts("listed"), "statistics": counts("statistics")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32, help="per process")
    parser.add_argument("--width", type=float, default=0.0625)
    parser.add_argument("--workers", type=int, default=1, help="loader workers per process")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        make_folder(root, args.images)
        make_folder(root, args.images // 10, seed=1, split="val")
        first, second = listing_times(root, Path(tmp) / "cache")
        print(f"{args.images:,} train JPEGs, shorter sides 160-320, aspects 0.75-1.33")
        print(f"listing: first open {first:.2f} s (headers read), second open {second:.3f} s (cached)")
        rate = worker_images_per_s(root, Path(tmp) / "cache")
        print(f"decode + augment (224 crop, s 256-512, draft): {rate:.0f} images/s per worker (one thread)")
        fake = f"fake:n={args.images},val={args.images // 10},size=224,classes=10,channels=3"
        print(
            f"training: imagenet_model_a width {args.width}, fc 256, batch {args.batch} per process, "
            f"{args.steps} steps, {args.workers} loader worker(s) and one thread per process"
        )
        for nproc in (1, 2):
            for name, spec in (("JPEG folder", f"folder:{root}"), ("in-memory 224 px", fake)):
                r = train_run(Path(tmp) / f"{nproc}-{name.split()[0]}", spec, nproc, args)
                statistics = r["statistics"].get("all", [0] * nproc)
                print(
                    f"  {nproc} process(es), {name:16s}: {r['images_per_s']:6.1f} images/s; "
                    f"listings per rank {r['listed']}, statistics computed per rank {statistics}"
                )


if __name__ == "__main__":
    main()
