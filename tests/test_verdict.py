"""The verdict rules of the training experiments, on made-up per-seed numbers for every case."""

from __future__ import annotations

import math

import pytest

from rectifiers.experiments.verdict import trained_out, verdict

# PReLU's top-1 error minus ReLU's, per seed; the paper: -0.011 (PReLU better)
PAPER = -0.011


@pytest.mark.parametrize(
    "values, out, kind",
    [
        ([-0.012, -0.010, -0.011], False, "shown"),  # the paper's sign and size, far beyond 2 s.e.
        ([-0.062, -0.060, -0.058], False, "size disagrees"),  # right sign, 5.5 times the size
        ([-0.0041, -0.0040, -0.0039], True, "size disagrees"),  # right sign, a third of the size
        ([0.031, 0.062, 0.045], False, "opposite sign"),  # PReLU worse: a sign, not a size
        ([0.031, 0.062, 0.045], True, "refuted"),  # ... and the runs were trained out
        ([-0.02, 0.015, -0.01], True, "within noise"),  # |mean| within 2 s.e.
        ([-0.031], False, "no noise estimate"),  # one seed
        ([-0.031], True, "no noise estimate"),
    ],
)
def test_each_case(values, out, kind):
    v = verdict(values, sign=-1, paper=PAPER, trained_out=out)
    assert v.kind == kind
    assert v.n == len(values) and v.mean == pytest.approx(sum(values) / len(values))
    assert f"**{kind}**" in v.describe()


def test_two_standard_errors_is_the_line():
    # mean 0.02 in both; s.e. = std / 2 over 4 seeds
    shown = verdict([0.01, 0.03, 0.01, 0.03], sign=1, trained_out=False)  # s.e. 0.0058: 3.5 s.e. out
    assert shown.se == pytest.approx(0.02 / math.sqrt(3) / 2) and shown.kind == "shown"
    noisy = verdict([0.0, 0.04, 0.0, 0.04], sign=1, trained_out=False)  # s.e. 0.0115: 1.7 s.e. out
    assert noisy.se == pytest.approx(0.04 / math.sqrt(3) / 2) and noisy.kind == "within noise"


def test_sign_only_claims_ignore_size():
    assert verdict([0.5, 0.6, 0.55], sign=1, trained_out=True).kind == "shown"
    assert verdict([-0.5, -0.6, -0.55], sign=1, trained_out=True).kind == "refuted"


def test_describe_reads_the_numbers():
    text = verdict([-0.012, -0.010, -0.011], sign=-1, paper=PAPER, trained_out=True).describe()
    assert text.startswith("**shown**: -1.10 ± 0.06 points (s.e., 3 seeds); paper -1.10")
    one = verdict([0.031], sign=-1, paper=PAPER, trained_out=False).describe()
    assert "one seed" in one and "±" not in one
    assert "not refuted" in verdict([0.03, 0.06], sign=-1, trained_out=False).describe()


def test_bad_arguments():
    with pytest.raises(ValueError, match="sign"):
        verdict([0.1], sign=0, trained_out=False)
    with pytest.raises(ValueError, match="finite"):
        verdict([math.nan, 0.1], sign=1, trained_out=False)
    with pytest.raises(ValueError, match="does not have the claim's sign"):
        verdict([0.1, 0.2], sign=-1, paper=0.01, trained_out=False)


def test_trained_out_is_the_last_three_epochs_within_a_point():
    assert trained_out([0.9, 0.5, 0.30, 0.305, 0.298])
    assert not trained_out([0.9, 0.5, 0.32, 0.305, 0.298])  # 2.2 points over the last three
    assert not trained_out([0.30, 0.30])  # too short to tell
