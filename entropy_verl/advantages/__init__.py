"""Advantage estimators, one file per paper, registered in ``entropy_verl.registry`` (kind ``estimator``) and, through
``estimator.py``'s adapter, in verl's registry: ``algorithm.adv_estimator=<name>`` selects one, its settings live
under ``entropy_verl.methods.<name>`` like every other method's.
"""

from . import gdpo, sample_polarity, seed_grpo, unlikeliness  # noqa: F401  - register the estimators
from .estimator import EstimatorContext, estimator_inputs, register_with_verl

register_with_verl()

__all__ = ["EstimatorContext", "estimator_inputs", "register_with_verl"]
