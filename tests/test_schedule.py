"""Piecewise-linear schedules (entropy_verl/schedule.py): values by hand, start-up validation through the run config,
and which settings can take one."""

import pytest

from entropy_verl.config import ConfigError, parse
from entropy_verl.schedule import Schedule, parse_schedule, schedulable_fields


def test_values_between_before_and_after_the_points():
    schedule = parse_schedule([[10, 0.4], [20, 0.1], [40, 0.3]], "x")
    assert schedule == Schedule(((10, 0.4), (20, 0.1), (40, 0.3)))
    by_hand = {0: 0.4, 10: 0.4, 15: 0.25, 20: 0.1, 25: 0.15, 30: 0.2, 40: 0.3, 1000: 0.3}
    assert {step: schedule.at(step) for step in by_hand} == pytest.approx(by_hand, abs=1e-12)
    assert parse_schedule([[0, 2]], "x").at(7) == 2.0  # one point: constant
    assert schedule.as_list() == [[10, 0.4], [20, 0.1], [40, 0.3]]


@pytest.mark.parametrize(
    "value,why",
    [
        ([], "an empty schedule"),
        ([[0, 0.4], [0, 0.1]], "point 1: steps must increase, got 0 after 0"),
        ([[5, 0.4], [2, 0.1]], "point 1: steps must increase, got 2 after 5"),
        ([[0.5, 0.4]], "point 0: the step must be an integer >= 0, got 0.5"),
        ([[-1, 0.4]], "point 0: the step must be an integer >= 0, got -1"),
        ([[True, 0.4]], "point 0: the step must be an integer >= 0, got True"),
        ([[0, float("nan")]], "point 0: the value must be a finite number, got nan"),
        ([[0, "a"]], "point 0: the value must be a finite number, got 'a'"),
        ([[0, 0.4, 1]], "point 0 is [0, 0.4, 1], not a [step, value] pair"),
        ([0.4], "point 0 is 0.4, not a [step, value] pair"),
    ],
)
def test_a_bad_schedule_names_its_key_and_point(value, why):
    with pytest.raises(ValueError) as error:
        parse_schedule(value, "entropy_verl.controllers.pi.target_entropy")
    assert str(error.value).startswith(f"entropy_verl.controllers.pi.target_entropy: {why} (a schedule is")


def test_the_run_config_takes_schedules_and_builds_the_config_at_step_0(run_config):
    parsed = parse(
        run_config(
            "method=[entropic,entropy_bonus]",
            "entropy_verl.controllers.pi.target_entropy=[[0,0.4],[100,0.1]]",
            "entropy_verl.methods.entropy_bonus.coef=[[10,1e-3],[20,0]]",
        )
    )
    assert parsed.schedules == {
        "pi": {"target_entropy": Schedule(((0, 0.4), (100, 0.1)))},
        "entropy_bonus": {"coef": Schedule(((10, 1e-3), (20, 0.0)))},
    }
    configs = {spec.name: cfg for spec, cfg in [*parsed.controllers, *parsed.methods]}
    assert configs["pi"].target_entropy == 0.4 and configs["entropy_bonus"].coef == 1e-3


@pytest.mark.parametrize(
    "override,key,message",
    [
        (  # the config's range check, at the point where the schedule breaks it
            "entropy_verl.controllers.pi.target_entropy=[[0,0.4],[100,-0.1]]",
            "entropy_verl.controllers.pi",
            "at step 100 of its schedule (target_entropy): target_entropy must be >= 0, got -0.1",
        ),
        (
            "entropy_verl.controllers.pi.output_limit=[[0,1.0]]",
            "entropy_verl.controllers.pi.output_limit",
            "cannot be scheduled; pi's settings that can: target_entropy, kp, ki",
        ),
        (
            "entropy_verl.controllers.pi.kp=[[3,1.0],[2,0.5]]",
            "entropy_verl.controllers.pi.kp",
            "point 1: steps must increase, got 2 after 3",
        ),
    ],
)
def test_start_up_refuses_a_bad_schedule_naming_the_key(run_config, override, key, message):
    with pytest.raises(ConfigError) as error:
        parse(run_config("method=entropic", override))
    assert error.value.key == key and message in str(error.value)


def test_two_schedules_of_one_entry_are_checked_together_at_every_point(run_config):
    """adaptive_entropy needs coef_min <= coef_max: a coef_max schedule that dips below coef_min fails at its point."""
    base = ["method=adaptive_entropy", "entropy_verl.controllers.adaptive_entropy.coef_min=1e-3"]
    parse(run_config(*base, "entropy_verl.controllers.adaptive_entropy.coef_max=[[0,5e-3],[50,1e-3]]"))
    with pytest.raises(ConfigError, match="at step 50 of its schedule"):
        parse(run_config(*base, "entropy_verl.controllers.adaptive_entropy.coef_max=[[0,5e-3],[50,5e-4]]"))


def test_the_targets_and_coefficients_are_schedulable(method):
    from entropy_verl import registry

    method("pi")  # loads the registry
    assert {"target_entropy", "kp", "ki"} <= set(schedulable_fields(registry.get("pi").config_cls))
    assert "target_entropy" in schedulable_fields(registry.get("adaptive_entropy").config_cls)
    assert schedulable_fields(registry.get("entropy_bonus").config_cls) == ("coef",)
    assert "target_temperature" not in schedulable_fields(registry.get("pi").config_cls)
