"""The benchmark reports' tables: each a list of columns over the rows a benchmark returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rectifiers.text_table import aligned_table, cell

# (header, the row's key or a function of the row, format spec: "" for str())
Column = tuple[str, str | Callable[[dict[str, Any]], Any], str]


def rows_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[Column], left: int, missing: str = "-"
) -> str:
    """One line per row, one aligned column per `Column` (the first `left` left-aligned); `missing`
    stands where a row has no value (None or no key)."""
    body = [
        [cell(value(r) if callable(value) else r.get(value), fmt, missing) for _, value, fmt in columns]
        for r in rows
    ]
    return aligned_table([header for header, _, _ in columns], body, left=left)
