"""Memory of DataLoader workers over an ImageNet-sized file listing: copy-on-read of the names.

A `FileDataset` of 1,000,000 generated names (1,000 classes x 1,000 files, ImageNet-style paths; no
image files are needed) is read by a 4-worker DataLoader for one shuffled epoch, each item looking up
its file name as a decode would. Forked workers share the parent's memory until they write to it; a
Python list of strings is written to by merely reading it (every access changes the string's
reference count), so each worker ends up with a private copy of every page of names it touched.
Reported: the main process's RSS, and per worker its RSS and its private memory (USS: the pages no
longer shared), from /proc/PID/smaps_rollup (Linux only).

    python benchmarks/bench_names_rss.py [--names 1000000] [--workers 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import torch
import torch.utils.data

from rectifiers.data import FileDataset
from rectifiers.decode import DirStore


def memory_mib(pid: int) -> dict[str, float]:
    """Rss and private (USS) memory of a process, MiB, from /proc/PID/smaps_rollup."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = float(value.split()[0]) / 1024  # kB -> MiB
    return {"rss": fields["Rss"], "uss": fields["Private_Clean"] + fields["Private_Dirty"]}


class _TouchNames(torch.utils.data.Dataset):
    """Looks up item i's file name, as the decoding path does, and returns its length."""

    def __init__(self, dataset: FileDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> int:
        return len(self.dataset.names[i])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    classes = 1000
    per_class = args.names // classes
    names = [f"train/n{c:08d}/n{c:08d}_{i}.JPEG" for c in range(classes) for i in range(per_class)]
    targets = torch.arange(classes).repeat_interleave(per_class)
    with tempfile.TemporaryDirectory() as tmp:
        ds = FileDataset(DirStore(Path(tmp)), names, targets, [str(c) for c in range(classes)], 3, "bench")
        del names
        before = memory_mib(multiprocessing.current_process().pid or 0)
        loader = torch.utils.data.DataLoader(
            _TouchNames(ds),
            batch_size=1024,
            shuffle=True,
            num_workers=args.workers,
            persistent_workers=True,
        )
        t0 = time.perf_counter()
        total = sum(int(b.sum()) for b in loader)
        seconds = time.perf_counter() - t0
        pids = {p.pid for p in multiprocessing.active_children()}
        workers = {pid: memory_mib(pid) for pid in pids}
    print(f"{len(ds):,} names ({type(ds.names).__name__}), {args.workers} workers, one shuffled epoch")
    print(f"epoch: {seconds:.1f} s ({total:,} name characters read)")
    print(f"main process RSS: {before['rss']:.0f} MiB")
    for pid, m in sorted(workers.items()):
        print(f"worker {pid}: RSS {m['rss']:.0f} MiB, private (USS) {m['uss']:.0f} MiB")
    print(f"workers' private memory in total: {sum(m['uss'] for m in workers.values()):.0f} MiB")


if __name__ == "__main__":
    main()
