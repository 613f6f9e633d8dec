"""Entropy-aware actor losses: verl's PPO loss plus registered entropy terms (see ``actor_loss.py``)."""

from . import entropic, entropy_bonus  # noqa: F401  - register the built-in terms
from .actor_loss import EntropyLossConfig, entropy_aware_loss
from .context import COEFFICIENTS_KEY, LossContext, build_loss_context
from .registry import ENTROPY_TERMS, get_entropy_term, register_entropy_term, selected_token_mean

__all__ = [
    "COEFFICIENTS_KEY",
    "ENTROPY_TERMS",
    "EntropyLossConfig",
    "LossContext",
    "build_loss_context",
    "entropy_aware_loss",
    "get_entropy_term",
    "register_entropy_term",
    "selected_token_mean",
]
