"""Non-finite safety (``entropy_verl.safety``): one NaN must not poison a run, and steps that cannot train must not
pass silently.

Without it, a single non-finite entropy reading (a NaN loss upstream, an empty step) enters the PI controller's
integral, every later alpha is NaN, every loss is NaN, verl skips every optimizer step ("grad_norm is not finite"),
the NaN is saved in the checkpoint and restored on resume, and the run still exits 0; and a reward function that
returns a non-number for a few rows makes every later score, advantage, loss and gradient norm NaN, silently.
``Safety`` watches everything a step trains on:

- each step's non-finite values are counted by kind (``entropy``, ``reward``, ``advantages``, ``loss``,
  ``grad_norm``: ``entropy_control/nonfinite/<kind>``) and warned about, with the offending rows where known;
- a step with any of them is a bad step (``entropy_control/nonfinite/{consecutive,total}``); ``max_nonfinite_steps``
  bad steps in a row fail the run, with an error that says what was seen;
- a non-finite measurement never reaches a controller: the step keeps the last finite coefficients;
- a non-finite reward follows ``nonfinite_reward``: ``zero`` (the response scores 0), ``fail``, or ``keep`` (verl's
  own behaviour: its group's advantages and the step's loss become NaN, and verl skips the update);
- a non-finite coefficient (a whole-step statistic, a controller output) is replaced by its last finite value, or
  fails the run if it never had one; so no loss term, and no checkpoint, ever holds one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

from entropy_verl import metric_names

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SafetyConfig:
    max_nonfinite_steps: int = 3
    """Consecutive steps with anything non-finite (entropy, rewards, advantages, loss, gradient norm) before the run
    fails (>= 1; 1: fail on the first)."""
    nonfinite_reward: Literal["zero", "fail", "keep"] = "zero"
    """A reward that is not a finite number: 'zero' scores the response 0 (the step trains and counts as bad),
    'fail' stops the run at once, 'keep' trains on it as verl does (NaN advantages and loss, update skipped)."""

    def __post_init__(self):
        if self.max_nonfinite_steps < 1:
            raise ValueError(f"max_nonfinite_steps must be >= 1, got {self.max_nonfinite_steps}")


class NonFiniteError(RuntimeError):
    """The run saw too many non-finite steps (or a coefficient with no finite value to fall back to)."""


KINDS = ("entropy", "reward", "advantages", "loss", "grad_norm")  # what a step trains on, in pipeline order


class Safety:
    def __init__(self, cfg: SafetyConfig):
        self.cfg = cfg
        self.consecutive = 0  # bad steps in a row, this one included once it is bad
        self.total = 0
        self.seen: dict[str, int] = {}  # this step's non-finite values, by kind

    def observe(self, kind: str, count: int, step: int, detail: str = "") -> None:
        """Record ``count`` non-finite values of ``kind`` in this step; the first one makes it a bad step, and the
        ``max_nonfinite_steps``-th bad step in a row raises ``NonFiniteError``."""
        if count <= 0:
            return
        first = not self.seen
        self.seen[kind] = self.seen.get(kind, 0) + count
        logger.warning("step %d: %d non-finite %s%s", step, count, kind, detail)
        if not first:
            return
        self.consecutive += 1
        self.total += 1
        if self.consecutive >= self.cfg.max_nonfinite_steps:
            raise NonFiniteError(
                f"step {step}: {count} non-finite {kind}{detail}; non-finite values for {self.consecutive} "
                f"consecutive steps (entropy_verl.safety.max_nonfinite_steps={self.cfg.max_nonfinite_steps}), so "
                "training stops instead of skipping every update"
            )

    def accept(self, measurement: float, step: int) -> bool:
        """Whether this step's entropy measurement may update the controllers (it is finite); counted otherwise."""
        if math.isfinite(measurement):
            return True
        self.observe(
            "entropy", 1, step, f" (the step's entropy was {measurement}; the controllers keep their last coefficients)"
        )
        return False

    def end_step(self) -> dict[str, float]:
        """The step's counts by kind and the bad-step counters; a step with nothing non-finite ends a bad run."""
        if not self.seen:
            self.consecutive = 0
        metrics = {metric_names.nonfinite(kind): self.seen.get(kind, 0) for kind in KINDS}
        self.seen = {}
        return {**metrics, **self.metrics()}

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
