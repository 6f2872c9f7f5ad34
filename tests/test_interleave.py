"""The carryover-balanced run order of side-by-side benchmarks (`rectifiers.interleave`)."""

from __future__ import annotations

from collections import Counter

import pytest

from rectifiers.interleave import balanced_schedule, carryover_balanced_cycle, paired_ratio, time_interleaved


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_carryover_balanced_cycle_puts_every_entry_after_every_other_once(n: int) -> None:
    cycle = carryover_balanced_cycle(n)
    assert Counter(cycle) == dict.fromkeys(range(n), max(n - 1, 1))
    follows = Counter(zip(cycle, cycle[1:] + cycle[:1], strict=True))
    expected = {(a, b): 1 for a in range(n) for b in range(n) if a != b} if n > 1 else {(0, 0): 1}
    assert follows == expected


def test_balanced_schedule_gives_each_entry_its_calls() -> None:
    entries = [("auto", "relu"), ("auto", "prelu"), ("off", "relu"), ("off", "prelu")]
    order = list(balanced_schedule(entries, 5))
    assert Counter(order) == dict.fromkeys(entries, 5)
    assert order[:4] == [entries[0], entries[1], entries[0], entries[2]]
    assert list(balanced_schedule(entries, 0)) == []


def test_time_interleaved_balances_the_order_and_skips_warmup() -> None:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    wall, cpu = time_interleaved(fns, repeats=3, warmup=1)
    assert calls == list("abacbcabacbc")  # 4 calls each: 1 untimed, 3 timed
    assert {k: len(v) for k, v in wall.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for times in (*wall.values(), *cpu.values()) for t in times)
    calls.clear()
    time_interleaved(fns, repeats=1, warmup=0)  # a's second turn is skipped once a has its call
    assert calls == list("abc")


def test_carryover_balanced_cycle_needs_an_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        carryover_balanced_cycle(0)


def test_bad_repeats_are_refused_and_ratios_pair_the_kth_calls() -> None:
    with pytest.raises(ValueError, match="repeats must be >= 1 and warmup >= 0"):
        time_interleaved({"a": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="repeats must be >= 1 and warmup >= 0"):
        time_interleaved({"a": lambda: None}, repeats=1, warmup=-1)
    assert paired_ratio([2.0, 9.0, 3.0], [1.0, 3.0, 1.0]) == 3.0  # ratios 2, 3, 3
