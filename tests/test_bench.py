"""The PReLU op benchmark's measurement function (timings themselves are never asserted)."""

from __future__ import annotations

import re

import pytest
import torch

from rectifiers.bench.prelu_op import OPS, bench_prelu_op, format_bench_table


def test_rows_cover_every_configuration_with_consistent_ratios() -> None:
    rows = bench_prelu_op(shape=(2, 4, 3, 3), repeats=2, warmup=1, ops=tuple(OPS))
    assert len(rows) == 2 * 2 * 2 * len(OPS)  # dtypes × formats × passes × ops
    for row in rows:
        assert row["median_ms"] > 0 and row["min_ms"] <= row["median_ms"]
        if row["op"] == "relu":
            assert row["ratio_to_relu"] == 1.0
        if row["op"] == "torch.prelu":
            assert row["ratio_to_torch_prelu"] == 1.0
    table = format_bench_table(rows)
    assert "rectifiers.prelu" in table and "prelu_reference" in table
    assert len(table.splitlines()) == len(rows) + 2


def test_ratios_absent_without_their_baseline() -> None:
    rows = bench_prelu_op(
        shape=(2, 4),
        dtypes=("float32",),
        formats=("contiguous",),
        repeats=1,
        warmup=0,
        ops=("rectifiers.prelu",),
    )
    assert [r["ratio_to_relu"] for r in rows] == [None, None]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown"):
        bench_prelu_op(shape=(2, 4, 3, 3), dtypes=("float8",))
    with pytest.raises(ValueError, match="channels_last needs"):
        bench_prelu_op(shape=(2, 4), formats=("channels_last",))
    with pytest.raises(ValueError, match="repeats"):
        bench_prelu_op(repeats=0)


def test_machine_info_and_matmul_peak() -> None:
    from rectifiers.bench.machine_info import format_machine, machine_info, matmul_peak

    info = machine_info()
    assert info["cores"] >= 1 and info["threads"] >= 1 and info["torch"] == torch.__version__
    line = format_machine(info)
    assert line.startswith(f"cpu {info['cpu']}") and f"torch {torch.__version__}" in line
    assert matmul_peak("float32", size=64, repeats=2) > 0
    with pytest.raises(ValueError, match="unknown dtype"):
        matmul_peak("int8")
    with pytest.raises(ValueError, match="size and repeats"):
        matmul_peak(size=0)


def test_machine_line_names_the_bf16_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from rectifiers.bench.machine_info import format_machine, machine_info

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    line = format_machine(machine_info())
    assert re.search(r"\(AMX (yes|no), AVX512_BF16 (yes|no)\)", line), line
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in format_machine(machine_info())
