"""The step benchmark's cases, tables, memory measurement and CLI on a tiny model (timings themselves
are never asserted)."""

from __future__ import annotations

import json
import sys

import pytest

from rectifiers.bench.step import (
    PRESET_CASES,
    default_cases,
    format_memory_table,
    format_step_table,
    measure_step_memory,
)
from rectifiers.bench.suite import run_suite
from rectifiers.cli import main
from rectifiers.step_timing import StepCase, time_steps

TINY = StepCase(
    label="tiny", model="net14", width=0.125, fc_width=16, in_chans=1, size=16, classes=4, batch=4
)


def test_step_table_has_a_line_per_row() -> None:
    rows = time_steps([TINY], repeats=2, warmup=1, peaks={"float32": 1.0, "bfloat16": 1.0})
    table = format_step_table(rows)
    assert len(table.splitlines()) == len(rows) + 2 and "trainer/prelu" in table


def test_the_help_names_the_presets_it_takes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert all(name in text for name in PRESET_CASES), text


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        default_cases(presets=("imagenet",))
    with pytest.raises(ValueError, match="steps must be"):
        measure_step_memory(TINY, "trainer/prelu", steps=1)
    with pytest.raises(ValueError, match="unknown variant"):
        measure_step_memory(TINY, "plain/elu")
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
    for what in ("step", "loader", "all"):
        with pytest.raises(ValueError, match="measures the CPU trainer"):
            run_suite(what, print, device="cuda")
