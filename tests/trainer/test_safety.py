"""The non-finite safety between the entropy measurement and the controllers (entropy_verl/trainer/safety.py)."""

import math

import pytest

from entropy_verl.controllers import PIController, PIControllerConfig
from entropy_verl.trainer.safety import NonFiniteError, Safety, SafetyConfig


def run_steps(measurements, max_nonfinite_steps=3):
    """The trainer's per-step logic on a PI controller: (coefficients per step, safety, controller)."""
    safety = Safety(SafetyConfig(max_nonfinite_steps=max_nonfinite_steps))
    controller = PIController(PIControllerConfig(target_entropy=0.45, kp=1.0, ki=0.1))
    coefficients, seen = {}, []
    for step, h in enumerate(measurements, start=1):
        if safety.accept(h, step):
            coefficients = safety.finite(controller.update(h), coefficients, step)
        seen.append(dict(coefficients))
    return seen, safety, controller


def test_a_nan_step_keeps_the_last_coefficients_and_the_controller_state():
    seen, safety, controller = run_steps([0.5, math.nan, 0.4])
    clean, _, clean_controller = run_steps([0.5, 0.4])
    assert seen[1] == seen[0]  # the NaN step reuses step 1's alpha
    assert seen[2] == clean[1]  # and the controller continues as if the NaN step had not happened
    assert controller.state_dict() == clean_controller.state_dict()
    assert safety.metrics() == {"entropy_control/nonfinite/consecutive": 0, "entropy_control/nonfinite/total": 1}
    assert all(math.isfinite(v) for step in seen for v in step.values())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_too_many_in_a_row_fail_with_what_was_seen(bad):
    with pytest.raises(NonFiniteError, match=r"step 3: the step's entropy was .* for 2 consecutive steps"):
        run_steps([0.5, bad, bad], max_nonfinite_steps=2)
    run_steps([0.5, bad, 0.5, bad, 0.5], max_nonfinite_steps=2)  # not in a row: no failure


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
