"""Numbers as table cells: percentages, mean ± std over seeds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def pct(value: float, digits: int = 2) -> str:
    """A fraction in percent: pct(0.125) == '12.50'."""
    return f"{100 * value:.{digits}f}"


def pct_pm(values: Sequence[float], digits: int = 2) -> str:
    """'mean ± std' in percent ('mean' alone for one value)."""
    m, s = mean_std(values)
    return f"{100 * m:.{digits}f}" + (f" ± {100 * s:.{digits}f}" if len(values) > 1 else "")


def seeds_text(seeds: Sequence[int]) -> str:
    """The setup's list of seeds: 'seeds 0, 1, 2'."""
    return "seeds " + ", ".join(map(str, seeds))
