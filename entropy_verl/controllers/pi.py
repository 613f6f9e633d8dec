"""EntroPIC's PI controller on entropy (Yang et al., "EntroPIC", arXiv:2511.15248, Sec. 3, the PI law).

    e_t = H_t - H_target
    I_t = I_{t-1} + e_t                     (optionally clamped to [-I_max, I_max]: anti-windup)
    alpha_t = clip(Kp * e_t + Ki * I_t, -1, 1)

alpha > 0 (entropy above target) weights a term that sharpens confident tokens; alpha < 0 flattens them.
Unlike the reference code (one controller per GPU, fed by that GPU's micro-batches, never checkpointed), this is one
controller on the driver, fed with the global batch entropy, and its state goes into verl checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

from entropy_verl.registry import register
from entropy_verl.schedule import Scheduled

from .base import EntropyController, check_target


@dataclass(frozen=True)
class PIControllerConfig:
    target_entropy: Scheduled = 0.1
    """Entropy (nats/token) the controller holds; >= 0 (paper: e.g. 0.1 at temperature 0.6)."""
    target_temperature: float | None = 0.6
    """Sampling temperature the target was given at; start-up refuses a run sampling at another
    (``actor_rollout_ref.rollout.temperature``), where entropy differs; null: not stated (paper: 0.6)."""
    kp: Scheduled = 1.0
    """Proportional gain; >= 0 (paper: 1)."""
    ki: Scheduled = 0.01
    """Integral gain; >= 0 (paper: 0.01)."""
    integral_limit: float | None = None
    """Anti-windup clamp on |integral|; >= 0, null = unclamped (paper: unclamped)."""
    p_only: bool = False
    """Proportional control only (no integral); the paper's ablation."""
    output_limit: float = 1.0
    """alpha is clipped to [-output_limit, output_limit]; > 0 (paper: 1)."""

    def __post_init__(self):
        check_target(self.target_entropy, self.target_temperature)
        if self.kp < 0 or self.ki < 0:
            raise ValueError(f"kp and ki must be >= 0, got kp={self.kp}, ki={self.ki}")
        if self.integral_limit is not None and self.integral_limit < 0:
            raise ValueError(f"integral_limit must be >= 0 or null, got {self.integral_limit}")
        if self.output_limit <= 0:
            raise ValueError(f"output_limit must be > 0, got {self.output_limit}")


@register("pi", kind="controller", config=PIControllerConfig, outputs=("alpha",))
class PIController(EntropyController):
    def __init__(self, config: PIControllerConfig):
        super().__init__()
        self.config = config
        self.integral = 0.0
        self.steps = 0

    def update(self, measurement: float) -> dict[str, float]:
        cfg = self.config
        error = float(measurement) - cfg.target_entropy
        if not cfg.p_only:
            self.integral += error
            if cfg.integral_limit is not None:
                self.integral = min(max(self.integral, -cfg.integral_limit), cfg.integral_limit)
        ki_term = 0.0 if cfg.p_only else cfg.ki * self.integral
        alpha = min(max(cfg.kp * error + ki_term, -cfg.output_limit), cfg.output_limit)
        self.steps += 1
        return self._record(measurement, error, {self.outputs.alpha: alpha})

    def _state(self):
        return {"integral": self.integral, "steps": self.steps}

    def _load_state(self, state):
        self.integral = float(state["integral"])
        self.steps = int(state["steps"])

    def metrics(self):
        return {self.outputs.alpha: 0.0, **super().metrics(), "target": self.config.target_entropy}
