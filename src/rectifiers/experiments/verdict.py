"""From per-seed numbers to a verdict on one of the paper's claims, by rules fixed before any run.

Every claim the training experiments test is put as a per-seed statistic whose sign the paper
states: a paired difference (PReLU's error minus ReLU's of the same seed), a margin (chance error
minus a run's final error), a slope. `verdict` reads the seeds' mean and its standard error:

    no noise estimate   one seed: no standard error, so no verdict
    within noise        |mean| <= 2 s.e.: nothing shown either way
    opposite sign       beyond 2 s.e. with the sign the paper's claim denies; "refuted" instead
                        when every run was trained out (a run still learning may yet turn)
    size disagrees      beyond 2 s.e. with the paper's sign, but outside a factor of 2 of its size
    shown               beyond 2 s.e. with the paper's sign (and size, where the paper gives one)

A run is trained out when its validation error over the last `FLAT_EPOCHS` epochs stays within
`FLAT_SPREAD` (max - min): decided here, for every experiment, before the runs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SHOWN_BEYOND_SE = 2.0  # a claim is shown only beyond this many standard errors of the mean
SIZE_FACTOR = 2.0  # our size within [1/2, 2] times the paper's counts as the same size
FLAT_EPOCHS = 3  # "trained out": the last three epochs' validation error ...
FLAT_SPREAD = 0.01  # ... within 1 point of each other
TRAINED_OUT = f"held-out val error of the last {FLAT_EPOCHS} epochs within {100 * FLAT_SPREAD:g} point"

Kind = Literal["shown", "size disagrees", "opposite sign", "refuted", "within noise", "no noise estimate"]


@dataclass(frozen=True)
class Verdict:
    """What the seeds say about one claim."""

    kind: Kind
    mean: float
    se: float  # standard error of the mean; nan for one seed
    n: int  # seeds
    paper: float | None  # the paper's value of the same statistic, where it gives one
    trained_out: bool

    def describe(self, scale: float = 100.0, unit: str = " points", digits: int = 2) -> str:
        """'**shown**: +1.20 ± 0.30 points (s.e., 3 seeds); paper +1.10', numbers times `scale`."""

        def num(x: float) -> str:
            return f"{scale * x:+.{digits}f}"

        ours = num(self.mean) + (f" ± {scale * self.se:.{digits}f}{unit} (s.e., {self.n} seeds)")
        if self.n < 2:
            ours = f"{num(self.mean)}{unit} (one seed)"
        text = f"**{self.kind}**: {ours}"
        if self.paper is not None:
            text += f"; paper {num(self.paper)}"
        if self.kind == "opposite sign":
            text += "; runs not trained out, so not refuted"
        elif not self.trained_out:
            text += "; runs not trained out"
        return text


def trained_out(curve: Sequence[float]) -> bool:
    """Whether a validation-error curve (one value per epoch) ends flat (see the module docstring)."""
    tail = list(curve)[-FLAT_EPOCHS:]
    return len(tail) == FLAT_EPOCHS and max(tail) - min(tail) <= FLAT_SPREAD


def verdict(values: Sequence[float], *, sign: int, paper: float | None = None, trained_out: bool) -> Verdict:
    """The verdict of per-seed `values` on a claim that says their mean has `sign` (+1 or -1).

    `paper`: the paper's value of the statistic, when its size is comparable to ours (then a result
    of the right sign outside a factor `SIZE_FACTOR` of it reads "size disagrees"); None compares
    the sign only. `trained_out`: whether every run behind `values` was trained out.
    """
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign!r}")
    vals = [float(v) for v in values]
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"verdict needs finite per-seed values, got {vals}")
    if paper is not None and (not math.isfinite(paper) or paper * sign <= 0):
        raise ValueError(f"the paper's value {paper} does not have the claim's sign {sign:+d}")
    n, mean = len(vals), statistics.fmean(vals)
    se = statistics.stdev(vals) / math.sqrt(n) if n > 1 else math.nan

    def found(kind: Kind) -> Verdict:
        return Verdict(kind, mean, se, n, paper, trained_out)

    if n < 2:
        return found("no noise estimate")
    if abs(mean) <= SHOWN_BEYOND_SE * se:
        return found("within noise")
    if mean * sign < 0:
        return found("refuted" if trained_out else "opposite sign")
    if paper is not None and not 1 / SIZE_FACTOR <= mean / paper <= SIZE_FACTOR:
        return found("size disagrees")
    return found("shown")
