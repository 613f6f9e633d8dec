"""Advantage estimators registered in verl's registry (``algorithm.adv_estimator=<name>``); one file per paper.

Their parameters live under ``algorithm.<name>`` (e.g. ``algorithm.w_reinforce.positive_weight``), next to verl's own
estimator settings such as ``algorithm.norm_adv_by_std_in_grpo``.
"""

from . import gdpo, sample_polarity, seed_grpo, unlikeliness  # noqa: F401  - register their estimators with verl
from .config import (
           ESTIMATOR_CONFIGS,
           ESTIMATOR_NEEDS,
           estimator_config,
           register_estimator,
)
from .driver_inputs import FINAL_ANSWERS, REWARD_COMPONENTS, SEQUENCE_MEAN_OLD_LOG_PROB, advantage_inputs

__all__ = ["ESTIMATOR_CONFIGS", "ESTIMATOR_NEEDS", "FINAL_ANSWERS", "REWARD_COMPONENTS", "SEQUENCE_MEAN_OLD_LOG_PROB", "advantage_inputs",
           "estimator_config", "register_estimator"]
