"""The non-finite safety between the entropy measurement and the controllers (entropy_verl/trainer/safety.py)."""

import math

import pytest

from entropy_verl.trainer.safety import NonFiniteError, Safety, SafetyConfig


def test_a_non_finite_coefficient_falls_back_or_fails():
    safety = Safety(SafetyConfig())
    assert safety.finite({"a": math.nan, "b": 2.0}, {"a": 1.0}, step=4) == {"a": 1.0, "b": 2.0}
    assert safety.total == 1
    with pytest.raises(NonFiniteError, match="'c' is nan and has no finite value"):
        safety.finite({"c": math.nan}, {}, step=1)


def test_state_round_trip_and_range():
    safety = Safety(SafetyConfig())
    safety.accept(math.nan, 1)
    other = Safety(SafetyConfig())
    other.load_state_dict(safety.state_dict())
    assert other.state_dict() == {"consecutive": 1, "total": 1}
    with pytest.raises(ValueError, match="max_nonfinite_steps must be >= 1"):
        SafetyConfig(max_nonfinite_steps=0)
