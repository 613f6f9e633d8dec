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


def test_each_kind_is_counted_and_bad_steps_in_a_row_fail_naming_the_kind():
    safety = Safety(SafetyConfig(max_nonfinite_steps=2))
    safety.observe("reward", 3, step=1, detail=" reward(s), rows countdown3 #7")
    safety.observe("loss", 0, step=1)  # nothing non-finite: not recorded
    safety.observe("grad_norm", 1, step=1)
    step1 = safety.end_step()
    assert step1["entropy_control/nonfinite/reward"] == 3 and step1["entropy_control/nonfinite/grad_norm"] == 1
    assert step1["entropy_control/nonfinite/loss"] == 0 and step1["entropy_control/nonfinite/consecutive"] == 1
    assert safety.end_step()["entropy_control/nonfinite/consecutive"] == 0  # a clean step ends the bad run
    safety.observe("advantages", 5, step=3)
    safety.end_step()
    with pytest.raises(
        NonFiniteError, match=r"step 4: 2 non-finite reward.*rows countdown3 #7.*for 2 consecutive steps"
    ):
        safety.observe("reward", 2, step=4, detail=" reward(s), rows countdown3 #7")
    assert safety.total == 3


def test_the_reward_policy_is_one_of_three():
    from entropy_verl.config import ConfigError, build_config

    assert build_config(SafetyConfig, {}, "entropy_verl.safety").nonfinite_reward == "zero"
    with pytest.raises(ConfigError, match="entropy_verl.safety.nonfinite_reward.*'zero', 'fail', 'keep'"):
        build_config(SafetyConfig, {"nonfinite_reward": "drop"}, "entropy_verl.safety")
