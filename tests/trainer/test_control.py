"""The driver's per-step entropy control (entropy_verl/trainer/control.py): measurement, non-finite safety,
controllers, coefficients, and its checkpointed state."""

import math

import pytest

from entropy_verl.config import EntropyVerlConfig, TaskConfig
from entropy_verl.diagnostics.step import DiagnosticsConfig
from entropy_verl.schedule import parse_schedule
from entropy_verl.trainer.control import EntropyControl
from entropy_verl.trainer.safety import NonFiniteError, SafetyConfig


@pytest.fixture
def control(method):
    """``control(max_nonfinite_steps=3, methods=(), schedules=None)``: the trainer's control with one PI controller
    (target 0.45, kp 1, ki 0.1), the loss ``methods`` ((spec, cfg) pairs) and ``schedules`` ({entry: {setting:
    [[step, value], ...]}})."""

    def build(max_nonfinite_steps=3, methods=(), schedules=None):
        parsed = EntropyVerlConfig(
            methods=list(methods),
            controllers=[method("pi", target_entropy=0.45, kp=1.0, ki=0.1)],
            estimator=None,
            task=TaskConfig(),
            diagnostics=DiagnosticsConfig(),
            safety=SafetyConfig(max_nonfinite_steps=max_nonfinite_steps),
            tuned_on=None,
            schedules={
                name: {setting: parse_schedule(points, setting) for setting, points in settings.items()}
                for name, settings in (schedules or {}).items()
            },
        )
        return EntropyControl(parsed)

    return build


def run_steps(control, measurements):
    """(coefficients after each step, the last step's metrics)."""
    seen, metrics = [], {}
    for step, h in enumerate(measurements, start=1):
        metrics = control.measure(h, step)
        metrics.update(control.safety.end_step())  # as the trainer ends each step
        seen.append(dict(control.coefficients))
    return seen, metrics


def test_a_pi_step_by_hand(control):
    ctl = control()
    seen, metrics = run_steps(ctl, [0.65, 0.35])
    # e1 = 0.2, I1 = 0.2, alpha1 = 0.2 + 0.02; e2 = -0.1, I2 = 0.1, alpha2 = -0.1 + 0.01
    assert seen[0]["alpha"] == pytest.approx(0.22) and seen[1]["alpha"] == pytest.approx(-0.09)
    assert metrics["entropy_control/pi/integral"] == pytest.approx(0.1) and ctl.entropy == 0.35
    assert metrics["entropy_control/pi/error"] == pytest.approx(-0.1)


def test_a_nan_step_keeps_the_last_coefficients_and_the_controller_state(control):
    ctl, clean = control(), control()
    seen, metrics = run_steps(ctl, [0.5, math.nan, 0.4])
    clean_seen, _ = run_steps(clean, [0.5, 0.4])
    assert seen[1] == seen[0]  # the NaN step reuses step 1's alpha
    assert seen[2] == clean_seen[1]  # and the controller continues as if the NaN step had not happened
    assert ctl.controllers["pi"].state_dict() == clean.controllers["pi"].state_dict()
    assert metrics["entropy_control/nonfinite/consecutive"] == 0 and metrics["entropy_control/nonfinite/total"] == 1
    assert all(math.isfinite(v) for step in seen for v in step.values())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_too_many_in_a_row_fail_with_what_was_seen(control, bad):
    with pytest.raises(
        NonFiniteError, match=r"step 3: 1 non-finite entropy \(the step's entropy was .* for 2 consecutive steps"
    ):
        run_steps(control(max_nonfinite_steps=2), [0.5, bad, bad])
    run_steps(control(max_nonfinite_steps=2), [0.5, bad, 0.5, bad, 0.5])  # not in a row: no failure


def test_step_statistics_join_the_coefficients_and_the_state_round_trips(control):
    ctl = control()
    ctl.measure(0.65, 1)
    ctl.add_step_stats({"clip_b/s_mean": 0.1}, 1)
    with pytest.raises(NonFiniteError, match="'clip_b/s_std' is nan"):  # no finite value to keep yet
        ctl.add_step_stats({"clip_b/s_std": math.nan}, 1)
    ctl.add_step_stats({"clip_b/s_std": 0.2}, 1)
    ctl.add_step_stats({"clip_b/s_std": math.inf}, 2)  # keeps 0.2
    assert ctl.coefficients == {"alpha": pytest.approx(0.22), "clip_b/s_mean": 0.1, "clip_b/s_std": 0.2}
    resumed = control()
    resumed.load_state_dict(ctl.state_dict())
    assert resumed.state_dict() == ctl.state_dict()
    assert run_steps(resumed, [0.35])[0] == run_steps(ctl, [0.35])[0]


def test_a_step_on_which_some_rank_used_another_coefficient_is_counted_and_kept_on_resume(control):
    ctl = control()
    ctl.measure(0.65, 1)
    alpha = ctl.coefficients["alpha"]
    same = {f"actor/entropy_verl/worker_coef/alpha/{s}": alpha for s in ("min", "max")}
    assert ctl.check_workers(same) == {"entropy_verl/worker_coef_mismatch_steps": 0}
    other = {**same, "actor/entropy_verl/worker_coef/alpha/max": alpha + 1e-9}  # one rank off by a hair
    assert ctl.check_workers(other) == {"entropy_verl/worker_coef_mismatch_steps": 1}
    assert ctl.check_workers(same) == {"entropy_verl/worker_coef_mismatch_steps": 1}  # ever: stays non-zero
    resumed = control()
    resumed.load_state_dict(ctl.state_dict())
    assert resumed.check_workers(same) == {"entropy_verl/worker_coef_mismatch_steps": 1}


def test_a_scheduled_target_drives_the_controller_and_a_scheduled_coefficient_reaches_the_workers(control, method):
    bonus = method("entropy_bonus")
    ctl = control(
        methods=[bonus],
        schedules={"pi": {"target_entropy": [[1, 0.45], [3, 0.25]]}, "entropy_bonus": {"coef": [[0, 1e-3], [4, 0]]}},
    )
    seen = []
    for step, h in enumerate([0.65, 0.35, 0.35], start=1):
        metrics = ctl.begin_step(step)
        seen.append(metrics)
        metrics.update(ctl.measure(h, step))
    # targets 0.45, 0.35, 0.25: e = 0.2, 0.0, 0.1; I = 0.2, 0.2, 0.3; alpha = e + 0.1 I
    assert metrics["entropy_control/pi/target"] == pytest.approx(0.25)
    assert ctl.coefficients["alpha"] == pytest.approx(0.1 + 0.03)
    assert [m["entropy_verl/schedule/pi/target_entropy"] for m in seen] == pytest.approx([0.45, 0.35, 0.25])
    assert [m["entropy_verl/schedule/entropy_bonus/coef"] for m in seen] == pytest.approx([7.5e-4, 5e-4, 2.5e-4])
    # the loss method's value travels with the coefficients; the controller's stays on the driver
    assert ctl.broadcast == {"alpha": pytest.approx(0.13), "schedule/entropy_bonus/coef": pytest.approx(2.5e-4)}
    assert ctl.config_of(*bonus).coef == pytest.approx(2.5e-4) and bonus[1].coef == 1e-3  # the parsed one unchanged
    # a worker that used another scheduled value is counted like any coefficient
    used = {f"actor/entropy_verl/worker_coef/{k}/{s}": v for k, v in ctl.broadcast.items() for s in ("min", "max")}
    assert ctl.check_workers(used)["entropy_verl/worker_coef_mismatch_steps"] == 0
    used["actor/entropy_verl/worker_coef/schedule/entropy_bonus/coef/min"] = 1e-3
    assert ctl.check_workers(used)["entropy_verl/worker_coef_mismatch_steps"] == 1


def test_a_scheduled_run_resumed_from_its_state_continues_exactly(control, caplog):
    schedules = {"pi": {"target_entropy": [[0, 0.5], [6, 0.2]], "ki": [[0, 0.1], [6, 0.0]]}}
    measurements = [0.6, 0.55, 0.4, 0.3, 0.35, 0.25]

    def steps(ctl, first, values):
        out = []
        for step, h in enumerate(values, start=first):
            ctl.begin_step(step)
            ctl.measure(h, step)
            out.append(ctl.coefficients["alpha"])
        return out

    whole = steps(control(schedules=schedules), 1, measurements)
    first = control(schedules=schedules)
    head = steps(first, 1, measurements[:3])
    state = first.state_dict()
    assert state["schedules"] == schedules
    resumed = control(schedules=schedules)
    resumed.load_state_dict(state)
    assert head + steps(resumed, 4, measurements[3:]) == whole  # exactly: the same floats
    changed = control(schedules={"pi": {"target_entropy": [[0, 0.5]]}})
    changed.load_state_dict(state)
    assert "resuming with schedules other than the checkpoint's (['pi'])" in caplog.text
