"""The training-step benchmark's machinery on a tiny model (timings themselves are never asserted)."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from rectifiers.activations import PReLU
from rectifiers.bench_step import (
    VARIANTS,
    StepCase,
    bench_step,
    default_cases,
    format_memory_table,
    format_step_table,
    make_step,
    measure_step_memory,
)
from rectifiers.cli import main

TINY = StepCase(
    label="tiny", model="net14", width=0.125, fc_width=16, in_chans=1, size=16, classes=4, batch=4
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains(variant: str) -> None:
    step = make_step(TINY, variant)
    cells = [c.cell_contents for c in step.__closure__ or ()]
    model = next(c for c in cells if isinstance(c, torch.nn.Module))
    kind, _, act = variant.partition("/")
    weights = {
        n: p.detach().clone()
        for n, p in model.named_parameters()
        if n.endswith(("conv1.weight", "fc3.weight"))
    }
    step()
    params = dict(model.named_parameters())
    assert len(weights) == 2 and all(not torch.equal(w, params[n]) for n, w in weights.items())
    activations = {type(m) for m in model.modules() if "ReLU" in type(m).__name__}
    expected = {"relu": torch.nn.ReLU, "prelu": torch.nn.PReLU if kind == "plain" else PReLU}[act]
    assert activations == {expected}
    layout = torch.channels_last if kind == "trainer" else torch.contiguous_format
    assert params["features.conv1.weight"].is_contiguous(memory_format=layout)


def test_bench_step_rows_and_ratios() -> None:
    rows = bench_step([TINY], repeats=2, warmup=1, peaks={"float32": 1.0, "bfloat16": 1.0})
    assert [r["variant"] for r in rows] == list(VARIANTS)
    for r in rows:
        assert r["wall_ms"] > 0 and r["cpu_ms"] >= 0 and r["images_per_s"] > 0 and r["gflops"] > 0
        assert r["peak_fraction"] == pytest.approx(r["gflops"])  # a peak of 1 GFLOP/s
        assert r["compute_dtype"] in ("float32", "bfloat16") and r["precision_reason"]
    top = rows[0]
    assert {"prelu_vs_relu", "prelu_vs_relu_cpu", "vs_plain", "vs_plain_cpu", "vs_plain_relu"} <= set(top)
    table = format_step_table(rows)
    assert len(table.splitlines()) == len(rows) + 2 and "trainer/prelu" in table


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        make_step(TINY, "plain/elu")
    with pytest.raises(ValueError, match="unknown variant"):
        bench_step([TINY], variants=("fast",))
    with pytest.raises(ValueError, match="repeats"):
        bench_step([TINY], repeats=0)
    with pytest.raises(ValueError, match="unknown preset"):
        default_cases(presets=("imagenet",))
    with pytest.raises(ValueError, match="steps must be"):
        measure_step_memory(TINY, "trainer/prelu", steps=1)
    cases = default_cases(("net14", "net30"), ("mnist", "cifar10"))
    assert [c.label for c in cases] == ["net14 mnist", "net30 mnist", "net14 cifar10", "net30 cifar10"]
    assert cases[2].width == 0.5 and cases[2].size == 32 and cases[2].in_chans == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_memory_is_measured_in_a_fresh_process() -> None:
    row = measure_step_memory(TINY, "trainer/prelu", steps=2, threads=1)
    assert row["keep_freed_memory"] is True
    assert row["peak_rss_mib"] > 0 and row["setup_rss_mib"] > 0 and row["cpu_s_per_step"] >= 0
    assert "tiny" in format_memory_table([row])


def test_cli_bench_prelu(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "prelu", "--repeats", "1", "--shape", "2,4,3,3", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "matmul peak" in text and "rectifiers.prelu" in text
    record = json.loads(out.read_text())
    assert record["matmul_peak_gflops"]["bfloat16"] > 0 and len(record["prelu"]) == 2 * 2 * 2 * 3
    assert main(["bench", "prelu", "--shape", "a,b"]) == 2


def test_step_and_loader_benchmarks_refuse_a_gpu_device() -> None:
    from rectifiers.bench_step import run_suite

    for what in ("step", "loader", "all"):
        with pytest.raises(ValueError, match="measures the CPU trainer"):
            run_suite(what, print, device="cuda")
