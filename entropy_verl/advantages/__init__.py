"""Advantage estimators registered in verl's registry (``algorithm.adv_estimator=<name>``); one file per paper.

Their parameters live under ``algorithm.<name>`` (e.g. ``algorithm.w_reinforce.positive_weight``), next to verl's own
estimator settings such as ``algorithm.norm_adv_by_std_in_grpo``.
"""

from . import sample_polarity  # noqa: F401  - registers w_reinforce, psr, nsr
from .config import ESTIMATOR_CONFIGS, estimator_config, register_estimator

__all__ = ["ESTIMATOR_CONFIGS", "estimator_config", "register_estimator"]
