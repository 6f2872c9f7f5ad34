"""Aligned plain-text tables for the benchmark reports."""

from __future__ import annotations


def aligned_table(header: list[str], body: list[list[str]], left: int) -> str:
    """``header``, a rule and ``body``, columns two spaces apart: the first ``left`` columns flush left,
    the rest flush right (numbers)."""
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if c < left else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def cell(value: float | None, fmt: str, missing: str = "-") -> str:
    """``value`` formatted by ``fmt``, or ``missing`` where a row has none."""
    return missing if value is None else format(value, fmt)
