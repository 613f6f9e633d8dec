"""Skywork-OR1's adaptive entropy coefficient (He et al., "Skywork Open Reasoner 1", arXiv:2505.22312, Sec. 4).

After each step the coefficient moves by one increment in the direction that restores entropy,
    c <- clip(c + delta if H < target else c - delta, c_min, c_max),
and the entropy bonus ``-c * token-mean(H)`` is applied only while H < target (otherwise the output is 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_verl.registry import register
from entropy_verl.schedule import Scheduled

from .base import EntropyController, check_target


@dataclass(frozen=True)
class AdaptiveEntropyConfig:
    target_entropy: Scheduled = 0.2
    """The bonus is on while entropy (nats/token) is below this; >= 0 (paper: 0.2)."""
    target_temperature: float | None = 1.0
    """Sampling temperature the target was given at; start-up refuses a run sampling at another
    (``actor_rollout_ref.rollout.temperature``), where entropy differs; null: not stated (paper: 1.0)."""
    delta: Scheduled = 1e-4
    """Step of the coefficient per training step; >= 0 (paper: 1e-4)."""
    coef_min: float = 0.0
    """Lower clip of the coefficient; >= 0 (paper: 0)."""
    coef_max: Scheduled = 5e-3
    """Upper clip of the coefficient; >= coef_min (paper: 5e-3)."""
    initial_coef: float = 0.0
    """Coefficient before the first step (clipped to [coef_min, coef_max]) (paper: 0)."""

    def __post_init__(self):
        check_target(self.target_entropy, self.target_temperature)
        if self.delta < 0:
            raise ValueError(f"delta must be >= 0, got {self.delta}")
        if not 0 <= self.coef_min <= self.coef_max:
            raise ValueError(f"need 0 <= coef_min <= coef_max, got [{self.coef_min}, {self.coef_max}]")


@register("adaptive_entropy", kind="controller", config=AdaptiveEntropyConfig, outputs=("entropy_coef",))
class AdaptiveEntropyController(EntropyController):
    """``entropy_coef`` is 0 while entropy is at or above target."""

    def __init__(self, config: AdaptiveEntropyConfig):
        super().__init__()
        self.config = config
        self.coef = min(max(config.initial_coef, config.coef_min), config.coef_max)

    def update(self, measurement: float) -> dict[str, float]:
        cfg = self.config
        below = measurement < cfg.target_entropy
        self.coef = min(max(self.coef + (cfg.delta if below else -cfg.delta), cfg.coef_min), cfg.coef_max)
        return self._record(
            measurement,
            float(measurement) - cfg.target_entropy,
            {self.outputs.entropy_coef: self.coef if below else 0.0},
        )

    def _state(self):
        return {"coef": self.coef}

    def _load_state(self, state):
        self.coef = float(state["coef"])

    def metrics(self):
        return {**super().metrics(), "target": self.config.target_entropy}
