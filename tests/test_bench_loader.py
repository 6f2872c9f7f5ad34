"""The loader benchmark's measurement functions (throughputs are never compared to a figure)."""

from __future__ import annotations

from rectifiers.bench.loader import benchmark_loaders, format_benchmark, measure_loader
from rectifiers.data import open_dataset
from rectifiers.loader import BatchLoader
from rectifiers.transforms import TrainTransform


def test_measure_and_benchmark_report_throughput() -> None:
    ds = open_dataset("fake:n=64,size=16")
    m = measure_loader(BatchLoader(ds, 8, train=True, transform=TrainTransform(12, (12, 16))), max_batches=3)
    assert m["images"] == 24 and m["images_per_s"] > 0
    rows = benchmark_loaders(None, batch_size=32, max_batches=2, files=False)
    assert [(r["data"], r["mode"]) for r in rows] == [("mnist5k", "train"), ("mnist5k", "eval")]
    assert all(r["images_per_s"] > 0 for r in rows)
    assert "mnist5k" in format_benchmark(rows)
