"""Cells of the benchmark reports' tables (laid out by `rectifiers.text_table`)."""

from __future__ import annotations


def cell(value: float | None, fmt: str, missing: str = "-") -> str:
    """``value`` formatted by ``fmt``, or ``missing`` where a row has none."""
    return missing if value is None else format(value, fmt)
