"""Entropy-aware actor losses: verl's PPO loss plus registered entropy-control methods (see ``actor_loss.py``).

One file per method, registered in ``entropy_verl.registry`` by the decorator on its function; the kinds (advantage
shaping, token weight, loss term) compose as ``actor_loss.py`` says.
"""

from . import (  # noqa: F401  - registers the methods, and the pg_unclipped loss_mode with verl
    clip_b,
    clip_v,
    covariance,
    entropic,
    entropy_advantage,
    entropy_bonus,
    pg_unclipped,
    pos_adv_reweight,
    sent,
    steer,
    top_entropy,
)
from .actor_loss import apply_loss_methods, apply_loss_terms, entropy_aware_loss, run_method
from .context import COEFFICIENTS_KEY, SELECTION_PREFIX, LossContext, build_loss_context

__all__ = [
    "COEFFICIENTS_KEY",
    "SELECTION_PREFIX",
    "LossContext",
    "apply_loss_methods",
    "apply_loss_terms",
    "build_loss_context",
    "entropy_aware_loss",
    "run_method",
]
