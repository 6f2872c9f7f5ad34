from __future__ import annotations

import pytest
import torch

from rectifiers.metrics import error_from_counts, per_class_counts, topk_correct


def test_topk_on_hand_made_scores():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    targets = torch.tensor([1, 1, 0, 2])
    # top-1 hits: row 0 only; top-2: rows 0, 1 (0.15 is second), not row 2 (0.2 third), not row 3
    assert topk_correct(logits, targets, (1, 2, 3)).tolist() == [1.0, 2.0, 4.0]
    # top-5 of 3 classes counts everything
    assert topk_correct(logits, targets, (5,)).tolist() == [4.0]


def test_topk_rejects_bad_shapes():
    with pytest.raises(ValueError, match="expected logits"):
        topk_correct(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def test_confusion_counts():
    logits = torch.eye(3)[[0, 1, 1, 2]]
    counts = per_class_counts(logits, torch.tensor([0, 1, 2, 2]), 3)
    assert counts.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_error_from_counts():
    assert error_from_counts(3, 4) == 0.25
    assert error_from_counts(0, 0) != error_from_counts(0, 0)  # nan for an empty split
