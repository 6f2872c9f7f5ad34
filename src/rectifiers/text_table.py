"""Aligned plain-text tables, as the diagnostics and the benchmarks print them."""

from __future__ import annotations


def aligned_lines(header: list[str], body: list[list[str]], left: int) -> list[str]:
    """``header``, a rule and ``body``, columns two spaces apart: the first ``left`` columns flush left,
    the rest flush right (numbers)."""
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if c < left else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *map(line, body)]


def aligned_table(header: list[str], body: list[list[str]], left: int) -> str:
    """`aligned_lines` joined into one string."""
    return "\n".join(aligned_lines(header, body, left))
