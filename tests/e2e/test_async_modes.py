"""Entropy control in verl's asynchronous v1 trainers, end to end on CPU (the embedded default, smoke sizes)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_entropic_in_verls_colocate_async_trainer_every_worker_uses_the_drivers_coefficient(smoke_run):
    """``trainer.v1.trainer_mode=entropy_colocate_async``: verl's colocated asynchronous trainer with EntroPIC's
    controller on the driver; the controller measures the batch the trainer trains, and verl logs how many weight
    versions behind it was sampled."""
    rows = smoke_run(
        "experiment=embedded_entropic",
        "trainer.v1.trainer_mode=entropy_colocate_async",
        "entropy_verl.controllers.pi.integral_limit=null",
    )
    integral = 0.0
    for row in rows:
        driver = row["entropy_verl/driver_coef/alpha"]
        used = [row[f"actor/entropy_verl/worker_coef/alpha/{s}"] for s in ("min", "max")]
        assert used == [pytest.approx(driver, abs=1e-12)] * 2
        assert row["entropy_verl/worker_coef_mismatch_steps"] == 0
        integral += row["entropy_control/pi/error"]
        assert row["entropy_control/pi/integral"] == pytest.approx(integral, abs=1e-12)
        assert row["entropy_control/pi/measurement"] == pytest.approx(row["actor/entropy"], rel=1e-6)
        assert row["training/off_policy/trajectory_staleness/max"] >= 0  # verl's, next to the entropy
