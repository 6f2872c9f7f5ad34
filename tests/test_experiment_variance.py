"""The variance experiment's law: the Eq. 9 / Eq. 13 products over a span of layers, by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rectifiers.experiments.variance import _law


def _row(fan_in: float, fan_out: float, std: float, slope_in: float | None, slope_out: float | None):
    return SimpleNamespace(fan_in=fan_in, fan_out=fan_out, std=std, slope_in=slope_in, slope_out=slope_out)


ROWS = [
    _row(27, 576, 0.05, None, 0.0),  # conv1: nothing before it
    _row(576, 1152, 0.01, 0.0, 0.25),
    _row(1152, 1152, 0.02, 0.25, 0.0),
    _row(4608, 10, 0.1, 0.0, None),  # fc: nothing after it
]


def test_law_multiplies_the_span_layer_by_layer() -> None:
    forward, backward = _law(ROWS, 0, 3)
    # forward over layers 2..4 (their n and the rectifier before), backward over 1..3 (n̂, the one after)
    by_hand_forward = (0.5 * 576 * 0.01**2) * (0.5 * 1.0625 * 1152 * 0.02**2) * (0.5 * 4608 * 0.1**2)
    by_hand_backward = (0.5 * 576 * 0.05**2) * (0.5 * 1.0625 * 1152 * 0.01**2) * (0.5 * 1152 * 0.02**2)
    assert forward == pytest.approx(by_hand_forward, rel=1e-12)
    assert backward == pytest.approx(by_hand_backward, rel=1e-12)
    assert forward == pytest.approx(0.0288 * 0.24480 * 23.04, rel=1e-12)
    assert _law(ROWS, 1, 2) == pytest.approx((0.2448, 0.0612), rel=1e-12)
    assert _law(ROWS, 2, 2) == (1.0, 1.0)  # an empty span changes nothing
