"""Parsing of the phases' structured answers."""

from __future__ import annotations

import pytest

from activities.prompts import Evaluation


@pytest.mark.parametrize(("given", "expected"), [
    (0.0, 0.0), (0.75, 0.75), (1.0, 1.0), (8, 0.8), (10, 1.0), (85, 0.85), (250, 1.0), (-3, 0.0),
])
def test_evaluation_score_normalised(given: float, expected: float) -> None:
    assert Evaluation(score=given).score == pytest.approx(expected)
