"""Entropy-aware actor losses: verl's PPO loss plus registered entropy-control methods (see ``actor_loss.py``).

One file per method; ``registry.py`` says how the three kinds (advantage shaping, token weight, term) compose.
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
from .actor_loss import EntropyLossConfig, apply_loss_methods, entropy_aware_loss
from .context import COEFFICIENTS_KEY, LossContext, build_loss_context
from .registry import (
    LOSS_METHODS,
    get_loss_method,
    register_advantage_shaping,
    register_entropy_term,
    register_token_weight,
    selected_token_mean,
)

__all__ = [
    "COEFFICIENTS_KEY",
    "LOSS_METHODS",
    "EntropyLossConfig",
    "LossContext",
    "apply_loss_methods",
    "build_loss_context",
    "entropy_aware_loss",
    "get_loss_method",
    "register_advantage_shaping",
    "register_entropy_term",
    "register_token_weight",
    "selected_token_mean",
]
