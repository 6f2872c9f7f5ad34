"""The run order of benchmarks that time several variants side by side in one process.

A call runs slower right after a large one (a plain float32 training step evicts the caches and
churns the heap), so every variant must come right after every other one equally often, or the
ratios measure the neighbours. `carryover_balanced_cycle` gives such an order, `balanced_schedule`
walks it for any number of calls, and `time_interleaved` times callables in it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import TypeVar

__all__ = ["balanced_schedule", "carryover_balanced_cycle", "paired_ratio", "time_interleaved"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def carryover_balanced_cycle(n: int) -> list[int]:
    """A cyclic order of ``n`` entries in which each entry comes directly after every other entry
    exactly once per cycle (each appears n - 1 times; one entry alone: ``[0]``): an Eulerian circuit
    of the complete directed graph on the entries, by Hierholzer's algorithm.
    """
    if n < 1:
        raise ValueError(f"need at least one entry, got {n}")
    if n == 1:
        return [0]
    unused = {v: [u for u in range(n) if u != v] for v in range(n)}
    stack, circuit = [0], []
    while stack:
        if unused[stack[-1]]:
            stack.append(unused[stack[-1]].pop(0))
        else:
            circuit.append(stack.pop())
    circuit.reverse()
    return circuit[:-1]  # the circuit ends where it began; the cycle wraps instead


def balanced_schedule(entries: Sequence[T], calls: int) -> Iterator[T]:
    """Each of ``entries`` ``calls`` times, in the order of `carryover_balanced_cycle` (repeated);
    once an entry has had all its calls, the others go on in the same order without it."""
    cycle = carryover_balanced_cycle(len(entries))
    left = [calls] * len(entries)
    position = 0
    while any(left):
        i = cycle[position % len(cycle)]
        position += 1
        if left[i]:
            left[i] -= 1
            yield entries[i]


def time_interleaved(
    fns: dict[K, Callable[[], object]], repeats: int, warmup: int = 2
) -> tuple[dict[K, list[float]], dict[K, list[float]]]:
    """Wall and CPU seconds of every call of each of ``fns`` after its first ``warmup`` calls, the
    calls ordered by `carryover_balanced_cycle` (for a, b, c: a b a c b c, a b a c b c, ...). The k-th
    calls of all entries fall in the same cycle, so ratios of the k-th times are paired.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    names = list(fns)
    wall: dict[K, list[float]] = {n: [] for n in names}
    cpu: dict[K, list[float]] = {n: [] for n in names}
    for name in balanced_schedule(names, warmup + repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fns[name]()
        w1, c1 = time.perf_counter(), time.process_time()
        wall[name].append(w1 - w0)
        cpu[name].append(c1 - c0)
    return {n: t[warmup:] for n, t in wall.items()}, {n: t[warmup:] for n, t in cpu.items()}


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """The median over k of num[k] / den[k]: the k-th calls of `time_interleaved` ran side by side."""
    return statistics.median(a / b for a, b in zip(num, den, strict=True))
