"""Entropy-guided weight on positive-advantage tokens ("Revisiting Entropy in RLVR", arXiv:2511.05993, Sec. 5).

    lambda <- clip(lambda - delta if H < delta_H else lambda + delta, 0, 1)

Positive samples drive collapse, so when entropy falls below the threshold their weight shrinks, and it recovers
while entropy is above it. The loss multiplies A > 0 tokens by lambda.
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_verl.registry import register
from entropy_verl.schedule import Scheduled

from .base import EntropyController, check_target


@dataclass(frozen=True)
class LambdaScheduleConfig:
    target_entropy: Scheduled = 0.2
    """delta_H: lambda shrinks while entropy (nats/token) is below it; >= 0 (paper's value not confirmed)."""
    target_temperature: float | None = None
    """Sampling temperature the target was given at; start-up refuses a run sampling at another
    (``actor_rollout_ref.rollout.temperature``), where entropy differs; null: not stated (paper: not stated)."""
    delta: Scheduled = 0.05
    """Step of lambda per training step; >= 0 (paper: 0.05)."""
    initial_lambda: float = 1.0
    """lambda before the first step; in [0, 1]."""

    def __post_init__(self):
        check_target(self.target_entropy, self.target_temperature)
        if self.delta < 0:
            raise ValueError(f"delta must be >= 0, got {self.delta}")
        if not 0.0 <= self.initial_lambda <= 1.0:
            raise ValueError(f"initial_lambda must be in [0, 1], got {self.initial_lambda}")


@register("lambda_schedule", kind="controller", config=LambdaScheduleConfig, outputs=("pos_adv_lambda",))
class LambdaScheduleController(EntropyController):
    def __init__(self, config: LambdaScheduleConfig):
        super().__init__()
        self.config = config
        self.lam = config.initial_lambda

    def update(self, measurement: float) -> dict[str, float]:
        cfg = self.config
        step = -cfg.delta if measurement < cfg.target_entropy else cfg.delta
        self.lam = min(max(self.lam + step, 0.0), 1.0)
        return self._record(
            measurement, float(measurement) - cfg.target_entropy, {self.outputs.pos_adv_lambda: self.lam}
        )

    def _state(self):
        return {"lambda": self.lam}

    def _load_state(self, state):
        self.lam = float(state["lambda"])
