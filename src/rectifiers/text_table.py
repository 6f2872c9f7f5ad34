"""Plain-text tables, aligned or in markdown, as the reports, the CLI and the benchmarks print them."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def cell(value: object, fmt: str, missing: str = "-") -> str:
    """``value`` formatted by ``fmt``, or ``missing`` where there is none (None)."""
    return missing if value is None else format(value, fmt)


def aligned_lines(
    header: Sequence[str], body: Sequence[Sequence[str]], left: int | Collection[int], rule: bool = True
) -> list[str]:
    """``header``, a rule of dashes (with ``rule``) and ``body``, columns two spaces apart: the columns
    ``left`` names (the first ``left`` for a number) flush left, the rest flush right (numbers)."""
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]
    flush_left = range(left) if isinstance(left, int) else left

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(w) if c in flush_left else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), *([line(["-" * w for w in widths])] if rule else []), *map(line, body)]


def aligned_table(
    header: Sequence[str], body: Sequence[Sequence[str]], left: int | Collection[int], rule: bool = True
) -> str:
    """`aligned_lines` joined into one string."""
    return "\n".join(aligned_lines(header, body, left, rule))


def markdown_table(header: Sequence[object], body: Sequence[Sequence[object]], align: str = "") -> str:
    """A markdown table of the cells as `str` writes them; ``align`` has one character per column,
    "l" (flush left, the default for the columns it does not reach) or "r" (flush right: numbers)."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align.ljust(len(header), "l")) + "|"
    lines = ["| " + " | ".join(map(str, cells)) + " |" for cells in [header, *body]]
    return "\n".join([lines[0], rule, *lines[1:]])
