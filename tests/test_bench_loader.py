"""The loader benchmark's measurement functions (throughputs are never compared to a figure)."""

from __future__ import annotations

from pathlib import Path

from rectifiers.bench.loader import benchmark_loaders, format_benchmark, measure_loader
from rectifiers.config import load_config
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


def test_each_set_is_loaded_as_its_training_preset_sets_it(shared_data: Path) -> None:
    # The loader benchmark stands for `rectifiers train --config PRESET`: the same crop and scales, and
    # the net14 of that preset's size beside it.
    rows = benchmark_loaders(shared_data, batch_size=16, max_batches=1, files=False, repeats=1)
    preset = {"mnist5k": "mnist", "cifar10": "cifar10", "tinyimagenet": "tinyimagenet"}
    assert {r["data"] for r in rows} == set(preset)
    for r in rows:
        data = load_config(preset[r["data"]]).data
        assert (r["crop"], r["scale"]) == (data.crop, [data.scale_min, data.scale_max]), r["data"]
