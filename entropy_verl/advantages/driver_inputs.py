"""Per-response inputs some estimators need that verl's ``compute_advantage`` does not pass them.

verl calls a registered estimator with token-level rewards, the response mask, the group ids and its ``algorithm``
config. Unlikeliness also needs each response's mean old log-prob, SEED-GRPO each response's final answer, GDPO
(``gdpo_v1``) each response's reward components. The
``entropy_sync`` trainer reads these from the step's batch on the driver, row-aligned with the batch verl hands the
estimator, and provides them for the duration of verl's advantage computation.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

_INPUTS: dict[str, Any] | None = None
_METRICS: dict[str, float] | None = None

SEQUENCE_MEAN_OLD_LOG_PROB = "sequence_mean_old_log_prob"  # (bsz,) tensor
FINAL_ANSWERS = "final_answers"  # list[str | None], one per response
REWARD_COMPONENTS = "reward_components"  # {key: list[float]}: the reward function's returned dict, one value per response


@contextmanager
def advantage_inputs(**inputs):
    """Provide ``inputs`` to the estimators run inside; yields the dict of metrics they record."""
    global _INPUTS, _METRICS
    previous, _INPUTS, _METRICS = (_INPUTS, _METRICS), inputs, {}
    try:
        yield _METRICS
    finally:
        _INPUTS, _METRICS = previous


def record_advantage_metric(key: str, value: float) -> None:
    """Log ``value`` under ``key`` for this step (no-op outside ``advantage_inputs``)."""
    if _METRICS is not None:
        _METRICS[key] = float(value)


def advantage_input(name: str, estimator: str):
    if _INPUTS is None or name not in _INPUTS:
        raise RuntimeError(f"advantage estimator {estimator!r} needs {name!r}, which the entropy_sync trainer provides; "
                           f"set trainer.v1.trainer_mode=entropy_sync")
    return _INPUTS[name]
