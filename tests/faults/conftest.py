"""Fixtures of the fault suite, and its tally printed after the test session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fault_kit
import pytest


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`reference_run(**overrides)`: the run directory of an uninterrupted deterministic tiny run with
    those config overrides, made once per session and shared by the tests that compare against it."""
    made: dict[tuple[tuple[str, str], ...], Path] = {}

    def get(**overrides: str) -> Path:
        key = tuple(sorted(overrides.items()))
        if key not in made:
            tmp = tmp_path_factory.mktemp("reference")
            done = fault_kit.cli(fault_kit.train_args(tmp / "run", **overrides), tmp)
            assert done.returncode == 0, done.stderr[-3000:]
            made[key] = tmp / "run"
        return made[key]

    return get


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    here = Path(__file__).parent.name
    cases = [
        report
        for key in ("passed", "failed")
        for report in terminalreporter.stats.get(key, [])
        if getattr(report, "when", "") == "call" and f"/{here}/" in f"/{report.nodeid}"
    ]
    if not cases:
        return
    tally = fault_kit.TALLY
    terminalreporter.write_sep("-", "fault suite")
    terminalreporter.write_line(
        f"cases run: {len(cases)}, faults injected: {tally['faults injected']}, "
        f"runs recovered: {tally['runs recovered']}, data lost: {tally['data lost']}"
    )
