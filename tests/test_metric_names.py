"""Metric keys are written and parsed back with the same functions (entropy_verl/metric_names.py)."""

from __future__ import annotations

from entropy_verl import metric_names
from entropy_verl.diagnostics.entropy_law import OnlineEntropyLaw
from entropy_verl.diagnostics.pass_at_k import pass_at_k_metrics
from entropy_verl.tools.law import reward_key


def test_pass_at_k_written_by_the_diagnostics_is_read_back_by_the_tools():
    written = pass_at_k_metrics([[True, False, False, False], [False, False, False, False]], [["7"] * 4, [None] * 4])
    assert set(written) == {"val/pass@1", "val/pass@2", "val/pass@4", "val/distinct_correct"}
    assert metric_names.pass_at_values({**written, "actor/entropy": 0.3, "val/pass@x": 1.0}) == {
        1: written["val/pass@1"],
        2: written["val/pass@2"],
        4: written["val/pass@4"],
    }
    assert written["val/pass@1"] == 0.125 and written[metric_names.DISTINCT_CORRECT] == 0.5
    assert metric_names.pass_at_k_of("val/pass@32") == 32 and metric_names.pass_at_k_of("val-core/x/pass@32") is None


def test_the_law_pair_and_fit_keys_are_the_ones_the_offline_fit_reads():
    law = OnlineEntropyLaw()
    for h, r in ((0.9, 0.2), (0.6, 0.4), (0.3, 0.5)):
        law.add(h, r)
    assert set(law.metrics()) == {f"entropy_law/{k}" for k in ("a", "b", "ceiling", "rmse", "points")}
    assert reward_key([{metric_names.LAW_REWARD: 0.5, "val-core/countdown/reward/mean@8": 0.5}]) == "entropy_law/reward"
    assert reward_key([{"val-core/countdown/reward/mean@8": 0.5}]) == "val-core/countdown/reward/mean@8"


def test_driver_and_worker_keys():
    assert metric_names.controller("pi", "alpha") == "entropy_control/pi/alpha"
    assert metric_names.driver_coef("alpha") == "entropy_verl/driver_coef/alpha"
    assert metric_names.worker_coef("clip_b/s_mean", "min") == "entropy_verl/worker_coef/clip_b/s_mean/min"
    assert metric_names.worker_coef_logged("alpha", "max") == "actor/entropy_verl/worker_coef/alpha/max"
    assert metric_names.NONFINITE_TOTAL == "entropy_control/nonfinite/total"
