"""Non-finite safety (``entropy_verl.safety``) for the driver's coefficients: one NaN step must not poison a run.

Without it, a single non-finite entropy reading (a NaN loss upstream, an empty step) enters the PI controller's
integral, every later alpha is NaN, every loss is NaN, verl skips every optimizer step ("grad_norm is not finite"),
the NaN is saved in the checkpoint and restored on resume, and the run still exits 0. ``Safety`` sits between the
measurement and the controllers, and between every driver-side coefficient and the workers:

- a non-finite measurement never reaches a controller: the step keeps the last finite coefficients, the event is
  counted (``entropy_control/nonfinite/{consecutive,total}``) and warned about;
- ``max_nonfinite_steps`` consecutive non-finite steps fail the run with an error that says what was seen;
- a non-finite coefficient (a whole-step statistic, a controller output) is replaced by its last finite value, or
  fails the run if it never had one; so no loss term, and no checkpoint, ever holds one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from entropy_verl import metric_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SafetyConfig:
    max_nonfinite_steps: int = 3
    """Consecutive steps with a non-finite entropy measurement before the run fails (>= 1; 1: fail on the first)."""

    def __post_init__(self):
        if self.max_nonfinite_steps < 1:
            raise ValueError(f"max_nonfinite_steps must be >= 1, got {self.max_nonfinite_steps}")


class NonFiniteError(RuntimeError):
    """The run saw too many non-finite steps (or a coefficient with no finite value to fall back to)."""


class Safety:
    def __init__(self, cfg: SafetyConfig):
        self.cfg = cfg
        self.consecutive = 0
        self.total = 0

    def accept(self, measurement: float, step: int) -> bool:
        """Whether this step's measurement may update the controllers; counts and warns when it may not, and raises
        ``NonFiniteError`` at ``max_nonfinite_steps`` in a row."""
        if math.isfinite(measurement):
            self.consecutive = 0
            return True
        self.consecutive += 1
        self.total += 1
        if self.consecutive >= self.cfg.max_nonfinite_steps:
            raise NonFiniteError(
                f"step {step}: the step's entropy was {measurement} for {self.consecutive} consecutive steps "
                f"(entropy_verl.safety.max_nonfinite_steps={self.cfg.max_nonfinite_steps}); the policy's log-probs "
                "or the rollout are broken, so training stops instead of skipping every update"
            )
        logger.warning(
            "step %d: non-finite entropy (%s); the controllers keep their state and last coefficients (%d in a row)",
            step,
            measurement,
            self.consecutive,
        )
        return False

    def finite(self, new: dict[str, float], last: dict[str, float], step: int) -> dict[str, float]:
        """``new`` with every non-finite value replaced by its value in ``last`` (counted and warned)."""
        out = {}
        for key, value in new.items():
            if math.isfinite(value):
                out[key] = float(value)
                continue
            previous = last.get(key)
            if previous is None or not math.isfinite(previous):
                raise NonFiniteError(f"step {step}: coefficient {key!r} is {value} and has no finite value to keep")
            logger.warning("step %d: coefficient %r is %s; keeping %s", step, key, value, previous)
            self.total += 1
            out[key] = previous
        return out

    def metrics(self) -> dict[str, float]:
        return {
            metric_names.NONFINITE_CONSECUTIVE: self.consecutive,
            metric_names.NONFINITE_TOTAL: self.total,
        }

    def state_dict(self) -> dict[str, int]:
        return {"consecutive": self.consecutive, "total": self.total}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.consecutive, self.total = int(state["consecutive"]), int(state["total"])
