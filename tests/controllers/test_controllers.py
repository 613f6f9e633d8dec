"""Driver-side controllers: closed-loop behaviour on a simulated plant, saturation, anti-windup, state round-trip."""

import math

import pytest

from entropy_verl import registry
from entropy_verl.controllers import (
    AdaptiveEntropyConfig,
    AdaptiveEntropyController,
    LambdaScheduleConfig,
    LambdaScheduleController,
    PIController,
    PIControllerConfig,
)


def simulate_collapsing_policy(controller, steps, h0=0.6, drift=0.01, gain=0.05):
    """First-order plant: entropy drifts down by ``drift`` per step (GRPO's collapse) and the EntroPIC term moves it
    by ``-gain * alpha`` (alpha > 0 sharpens confident tokens, alpha < 0 flattens them)."""
    h, trace = h0, []
    for _ in range(steps):
        alpha = controller.update(h)["alpha"]
        h = h - drift - gain * alpha
        trace.append(h)
    return trace


def test_pi_step_response_reaches_target_without_steady_state_error():
    controller = PIController(PIControllerConfig(target_entropy=0.3, kp=1.0, ki=0.05))
    trace = simulate_collapsing_policy(controller, steps=400)
    assert abs(trace[-1] - 0.3) < 0.005
    assert max(abs(h - 0.3) for h in trace[-50:]) < 0.01
    # the integral holds exactly the bias that cancels the drift: alpha* = -drift / gain = -0.2
    assert controller.integral * 0.05 == pytest.approx(-0.2, abs=0.01)


def test_p_only_leaves_the_textbook_steady_state_error():
    controller = PIController(PIControllerConfig(target_entropy=0.3, kp=1.0, ki=0.05, p_only=True))
    trace = simulate_collapsing_policy(controller, steps=400)
    # P-only equilibrium: Kp * e = -drift / gain  ->  e = -0.2
    assert trace[-1] == pytest.approx(0.3 - 0.2, abs=1e-3)
    assert controller.integral == 0.0


def test_pi_formula_and_output_saturation():
    controller = PIController(PIControllerConfig(target_entropy=0.1, kp=1.0, ki=0.01))
    assert controller.update(0.35)["alpha"] == pytest.approx(0.25 + 0.01 * 0.25)  # e=0.25, I=0.25
    assert controller.update(0.15)["alpha"] == pytest.approx(0.05 + 0.01 * 0.30)  # e=0.05, I=0.30
    assert controller.update(5.0)["alpha"] == 1.0  # clipped to [-1, 1]
    assert controller.update(-5.0)["alpha"] == -1.0
    metrics = controller.metrics()
    assert metrics["error"] == pytest.approx(-5.1) and metrics["alpha"] == -1.0
    assert metrics["integral"] == pytest.approx(0.25 + 0.05 + 4.9 - 5.1)


def test_anti_windup_clamps_the_integral_and_recovers_faster():
    def recovery_steps(limit):
        controller = PIController(PIControllerConfig(target_entropy=0.2, kp=0.1, ki=0.1, integral_limit=limit))
        for _ in range(100):  # a long saturation episode: entropy far above target
            controller.update(1.2)
        steps = 0
        while controller.update(0.1)["alpha"] > 0:  # entropy now below target: how long until alpha turns?
            steps += 1
        return controller, steps

    clamped, fast = recovery_steps(limit=2.0)
    unclamped, slow = recovery_steps(limit=None)
    assert fast < 25 < slow
    assert -2.0 <= clamped.integral <= 2.0


def test_adaptive_entropy_coefficient():
    controller = AdaptiveEntropyController(AdaptiveEntropyConfig(target_entropy=0.2, delta=1e-4, coef_max=2.5e-4))
    assert controller.update(0.1)["entropy_coef"] == pytest.approx(1e-4)
    assert controller.update(0.1)["entropy_coef"] == pytest.approx(2e-4)
    assert controller.update(0.1)["entropy_coef"] == pytest.approx(2.5e-4)  # clipped at coef_max
    assert controller.update(0.3)["entropy_coef"] == 0.0  # above target: bonus off, state decays
    assert controller.coef == pytest.approx(1.5e-4)
    for _ in range(5):
        controller.update(0.3)
    assert controller.coef == 0.0  # clipped at coef_min


def test_lambda_schedule():
    controller = LambdaScheduleController(LambdaScheduleConfig(target_entropy=0.3, delta=0.05, initial_lambda=1.0))
    assert controller.update(0.4)["pos_adv_lambda"] == 1.0  # clipped at 1
    assert controller.update(0.2)["pos_adv_lambda"] == pytest.approx(0.95)
    assert controller.update(0.2)["pos_adv_lambda"] == pytest.approx(0.90)
    assert controller.update(0.35)["pos_adv_lambda"] == pytest.approx(0.95)
    for _ in range(40):
        controller.update(0.0)
    assert controller.lam == 0.0


@pytest.mark.parametrize(
    "name,config,trace",
    [
        ("pi", PIControllerConfig(target_entropy=0.2, integral_limit=3.0), [0.5, 0.1, 0.3, 0.05]),
        ("adaptive_entropy", AdaptiveEntropyConfig(), [0.5, 0.1, 0.1, 0.3]),
        ("lambda_schedule", LambdaScheduleConfig(), [0.5, 0.1, 0.1, 0.3]),
    ],
)
def test_state_round_trip_continues_the_exact_trajectory(name, config, trace):
    cls = registry.get(name, ("controller",)).impl
    reference, first = cls(config), cls(config)
    expected = [reference.update(h) for h in trace + trace]
    got = [first.update(h) for h in trace]
    resumed = cls(config)
    resumed.load_state_dict(first.state_dict())
    got += [resumed.update(h) for h in trace]
    assert got == expected
    assert resumed.metrics() == reference.metrics()


@pytest.mark.parametrize(
    "make",
    [
        lambda: PIControllerConfig(target_entropy=-0.1),
        lambda: PIControllerConfig(kp=-1.0),
        lambda: PIControllerConfig(ki=-0.01),
        lambda: AdaptiveEntropyConfig(target_entropy=-1.0),
        lambda: AdaptiveEntropyConfig(coef_min=1e-2, coef_max=1e-3),
        lambda: LambdaScheduleConfig(initial_lambda=1.5),
    ],
)
def test_bad_controller_config_is_rejected(make):
    with pytest.raises(ValueError):
        make()


def test_unknown_controller_name_suggests_the_closest():
    with pytest.raises(KeyError, match="unknown controller 'pid'; did you mean 'pi'"):
        registry.get("pid", ("controller",))
    assert math.isnan(PIController(PIControllerConfig()).metrics()["measurement"])
